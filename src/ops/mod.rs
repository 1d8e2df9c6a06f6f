//! The kernels ModernBERT needs, one file per family, each the Rust half of a shader in
//! `shaders/`: its parameter struct (mirrors the WGSL uniform), variant choice, dispatch
//! math, the step it records into a plan, and a CPU reference with f64 accumulation.

pub mod attention;
pub mod catalog;
pub mod check;
pub mod choice;
pub mod convert;
pub mod coop;
pub mod embedding;
pub mod gather;
pub mod layernorm;
pub mod matmul;
pub mod pooling;
pub mod rope;
pub mod rownorm;
pub mod splade;
pub mod timing;
pub mod topk;
pub mod tune;

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
            DType::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            DType::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// Every kernel variant the crate can create, for the naga translation test.
pub fn all_kernels() -> Vec<Kernel> {
    let mut v = vec![
        Kernel::new(
            "smoke",
            "main",
            &[
                crate::runtime::Access::Read,
                crate::runtime::Access::ReadWrite,
            ],
        )
        .with_params::<crate::runtime::SmokeParams>(),
    ];
    v.extend(convert::variants());
    v.extend(matmul::variants());
    v.extend(rope::variants());
    v.extend(attention::variants());
    v.extend(layernorm::variants());
    v.extend(embedding::variants());
    v.extend(pooling::variants());
    v.extend(gather::variants());
    v.extend(topk::variants());
    v.extend(splade::variants());
    v
}

/// Which run size gives the number of rows a step works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// All packed tokens (`RunSizes::rows`).
    Tokens,
    /// Rows selected for a head (`RunSizes::selected`).
    Selected,
    /// One row per sequence (`RunSizes::segments`).
    Segments,
    /// A fixed count (tests, benchmarks).
    Fixed(u32),
}

impl Rows {
    pub fn eval(self, s: &crate::runtime::RunSizes) -> u32 {
        match self {
            Rows::Tokens => s.rows,
            Rows::Selected => s.selected,
            Rows::Segments => s.segments,
            Rows::Fixed(n) => n,
        }
    }
}

/// Activation functions of ModernBERT configs, as the `ACT` define of shaders
/// (`act_{{ACT}}(x)` in `shaders/common/math.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Activation {
    /// Exact erf GELU ("gelu").
    GeluErf,
    /// tanh approximation ("gelu_pytorch_tanh", "gelu_new").
    GeluTanh,
    Silu,
    Relu,
}

impl Activation {
    /// Maps a transformers `ACT2FN` name; `None` for names we do not implement.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gelu" | "gelu_python" => Some(Activation::GeluErf),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Some(Activation::GeluTanh),
            "silu" | "swish" => Some(Activation::Silu),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    /// The canonical transformers name.
    pub fn name(self) -> &'static str {
        match self {
            Activation::GeluErf => "gelu",
            Activation::GeluTanh => "gelu_pytorch_tanh",
            Activation::Silu => "silu",
            Activation::Relu => "relu",
        }
    }

    pub fn wgsl(self) -> &'static str {
        match self {
            Activation::GeluErf => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Relu => "relu",
        }
    }

    /// The CPU reference in f64.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::GeluErf => 0.5 * x * (1.0 + erf_f64(x / std::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Relu => x.max(0.0),
        }
    }
}

/// erf in f64 to ~1e-15 (series for small |x|, continued fraction beyond), for references.
pub fn erf_f64(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        // Maclaurin series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1)).
        let mut sum = 0.0f64;
        let mut term = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) || n < 3.0 {
            sum += term / (2.0 * n + 1.0);
            n += 1.0;
            term *= -a * a / n;
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz), accurate for a >= 2.5.
        let mut f = a;
        for k in (1..60).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

#[cfg(test)]
mod tests {
    #[test]
    fn erf_reference_matches_known_values() {
        for (x, want) in [
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (3.0, 0.999_977_909_503_001_4),
            (-2.0, -0.995_322_265_018_952_7),
        ] {
            assert!((super::erf_f64(x) - want).abs() < 1e-13, "erf({x})");
        }
    }
}
