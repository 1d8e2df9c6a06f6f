//! The subgroup-reduction matmul (`MatmulVariant::Subgroup`, `shaders/matmul_subgroup.wgsl`):
//! one subgroup per output column, lanes split K, `subgroupAdd` reduces. Wins when there are
//! few rows (MLM head, pooled classifier); correct for any subgroup size.

use crate::runtime::Capabilities;

/// Up to this many rows the automatic choice takes this kernel over the tiled one (64-row
/// tiles leave most of the tile idle and give too few workgroups for narrow outputs).
pub const SMALL_ROWS: u32 = 32;
/// Output columns of one workgroup.
pub const COLS: u32 = 4;

pub fn supported(caps: &Capabilities) -> bool {
    caps.subgroups
}

/// The output tile of one workgroup: every row, `COLS` columns.
pub fn tile() -> (u32, u32) {
    (u32::MAX, COLS)
}
