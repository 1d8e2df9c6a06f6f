//! The kernels ModernBERT needs, one file per family, each the Rust half of a shader in
//! `shaders/`: its parameter struct (mirrors the WGSL uniform), variant choice, dispatch
//! math, the step it records into a plan, and a CPU reference with f64 accumulation.

use crate::runtime::Kernel;

/// Storage precision of activations and weights. Accumulation is always f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DType {
    F32,
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// The WGSL scalar type.
    pub fn wgsl(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }

    /// Adds the element-type defines every shader understands: `ELEM` (f32|f16) and `F16`
    /// (present for f16, which turns on `enable f16;`).
    pub fn apply(self, k: Kernel) -> Kernel {
        let k = k.define("ELEM", self.wgsl());
        match self {
            DType::F32 => k,
            DType::F16 => k.define("F16", 1),
        }
    }

    /// Host values to the storage bytes of this precision.
    pub fn encode(self, v: &[f32]) -> Vec<u8> {
        match self {
            DType::F32 => bytemuck::cast_slice(v).to_vec(),
            DType::F16 => {
                let h: Vec<half::f16> = v.iter().map(|&x| half::f16::from_f32(x)).collect();
                bytemuck::cast_slice(&h).to_vec()
            }
        }
    }

    /// Storage bytes of this precision back to f32 values.
    pub fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            DType::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// Every kernel variant the crate can create, for the naga translation test.
pub fn all_kernels() -> Vec<Kernel> {
    let mut v = vec![Kernel::new("smoke", "main", &[crate::runtime::Access::Read, crate::runtime::Access::ReadWrite])];
    v.extend([]);
    v
}
