//! The shared-memory tiled matmul (`MatmulVariant::Tiled`, `shaders/matmul.wgsl`): 64x64
//! output tiles, 256 threads of 4x4 outputs each; any adapter, any precision.

use super::kernel::Epilogue;

/// Rows and output columns of one workgroup (columns halve for GeGLU).
pub const TILE_M: u32 = 64;
pub const TILE_N: u32 = 64;

/// The output tile of one workgroup (rows, output columns).
pub fn tile(epilogue: Epilogue) -> (u32, u32) {
    match epilogue {
        Epilogue::GeGlu(_) => (TILE_M, TILE_N / 2),
        _ => (TILE_M, TILE_N),
    }
}
