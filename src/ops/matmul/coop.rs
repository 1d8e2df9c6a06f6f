//! The tensor-core matmul (`MatmulVariant::Coop`, `shaders/matmul_coop.wgsl`): cooperative
//! F x F x F f16 matrices (F = 16 or 8, the shape the adapter reports) with f32 accumulators,
//! warp tiles of 4 x 2 fragments laid out in a grid per workgroup (the tile configuration,
//! [`Config`]: 2 x 2 warp tiles, 8F x 4F outputs, when nothing was tuned), one subgroup of
//! the adapter's largest subgroup size (8 to 64) per warp tile. Inputs are staged through two
//! K blocks of workgroup memory; where K is a multiple of 8 (of 4) the next block is fetched
//! with 16-byte (8-byte) vector loads into registers while the current one is multiplied.
//! Same bindings, parameters and epilogues as the tiled kernel; f16 storage only.
//!
//! This module owns what is particular to the variant: whether an adapter can run it, its
//! tile configurations ([`CANDIDATES`], timed by the autotuner `ops::tune`), its kernel
//! builds (real and `EMULATE`, which tests the tiling on adapters without cooperative
//! matrices) and the shapes of its self-check. The self-check itself, and the choice, live
//! with the family (`ops::matmul`).

use super::kernel::{
    Epilogue, MatmulVariant, all_epilogues, kernel as family_kernel, vector_width,
};
/// One tile configuration (defined with the other choices in `ops::choice`).
pub use crate::ops::choice::CoopConfig as Config;
use crate::ops::coop::{self, Shape};
use crate::ops::{Activation, DType};
use crate::runtime::{Capabilities, Kernel};

/// Row stride in halves of the staged X and W rows (32 k each, padded).
const LDS: u32 = 40;

/// 2 x 2 warp tiles (128 x 64 outputs at F = 16): the configuration when nothing was tuned.
pub const DEFAULT: Config = Config { wm: 2, wn: 2 };

/// What the autotuner times: the default first, then fewer warps (more workgroups for short
/// or narrow products, less workgroup memory) and wider or taller grids (more reuse of each
/// staged element) where the adapter's workgroup memory allows.
pub const CANDIDATES: [Config; 7] = [
    DEFAULT,
    Config { wm: 1, wn: 2 },
    Config { wm: 2, wn: 1 },
    Config { wm: 1, wn: 1 },
    Config { wm: 1, wn: 4 },
    Config { wm: 2, wn: 4 },
    Config { wm: 4, wn: 2 },
];

impl Config {
    /// Its name in listings and caches: the warp grid, `2x2w`.
    pub fn name(self) -> String {
        format!("{}x{}w", self.wm, self.wn)
    }

    /// The configuration named `name` among the candidates.
    pub fn parse(name: &str) -> Option<Config> {
        CANDIDATES.into_iter().find(|c| c.name() == name)
    }

    /// Warp tiles (subgroups that multiply) per workgroup.
    pub const fn warps(self) -> u32 {
        self.wm * self.wn
    }

    /// Workgroup memory at fragment size `frag`: two K blocks of the tile's X and W rows in
    /// f16, and the f32 staging tile of half the output tile.
    pub const fn workgroup_bytes(self, frag: u32) -> u32 {
        let (tm, tn) = (4 * frag * self.wm, 2 * frag * self.wn);
        2 * (tm + tn) * LDS * 2 + tm / 2 * tn * 4
    }

    /// Invocations of one workgroup: one subgroup of the largest size per warp tile.
    pub const fn invocations(self, shape: Shape) -> u32 {
        self.warps() * shape.subgroup
    }

    /// Why the adapter's limits do not allow it at `shape`, if they do not.
    pub fn misfit(self, shape: Shape, caps: &Capabilities) -> Option<String> {
        let bytes = self.workgroup_bytes(shape.frag);
        if caps.max_workgroup_storage < bytes {
            return Some(format!(
                "matmul {} needs {bytes} bytes of workgroup memory, the adapter has {}",
                self.name(),
                caps.max_workgroup_storage
            ));
        }
        if caps.max_invocations < self.invocations(shape) {
            return Some(format!(
                "matmul {} needs {} invocations per workgroup, the adapter allows {}",
                self.name(),
                self.invocations(shape),
                caps.max_invocations
            ));
        }
        None
    }
}

/// The candidates the adapter can run at `shape`.
pub fn fitting(shape: Shape, caps: &Capabilities) -> Vec<Config> {
    CANDIDATES
        .into_iter()
        .filter(|c| c.misfit(shape, caps).is_none())
        .collect()
}

/// The configuration used untuned: [`DEFAULT`] where it fits, else the first candidate that
/// does (`supported` makes sure one does).
pub fn default_for(shape: Shape, caps: &Capabilities) -> Config {
    fitting(shape, caps).first().copied().unwrap_or(DEFAULT)
}

/// The output tile of one workgroup (rows, output columns) at fragment size `frag`.
pub fn tile(frag: u32, config: Config, epilogue: Epilogue) -> (u32, u32) {
    let (tm, tn) = (4 * frag * config.wm, 2 * frag * config.wn);
    match epilogue {
        Epilogue::GeGlu(_) => (tm, tn / 2),
        _ => (tm, tn),
    }
}

/// The shape this kernel runs at on the adapter, or why it cannot run there (no
/// cooperative matrices, or limits too small for even the smallest tile).
pub fn supported(caps: &Capabilities) -> std::result::Result<Shape, String> {
    let s = coop::shape(caps)?;
    if fitting(s, caps).is_empty() {
        let smallest = Config { wm: 1, wn: 1 };
        return Err(smallest
            .misfit(s, caps)
            .unwrap_or_else(|| "no tile configuration fits".into()));
    }
    Ok(s)
}

/// The real kernel for `epilogue`, with or without bias, at `shape` and `config`, for inner
/// size `k`: vector loads prefetched into registers (`VEC`), 16 bytes where `k` is a
/// multiple of 8 (`VEC8`: every ModernBERT matmul), 8 where it is a multiple of 4, scalar
/// loads otherwise (`vector_width`).
pub fn kernel(shape: Shape, config: Config, epilogue: Epilogue, bias: bool, k: u32) -> Kernel {
    build(shape, shape.subgroup, config, epilogue, bias, k)
}

fn build(
    shape: Shape,
    lanes: u32,
    config: Config,
    epilogue: Epilogue,
    bias: bool,
    k: u32,
) -> Kernel {
    let kernel = family_kernel(MatmulVariant::Coop, DType::F16, epilogue, bias)
        .define("FRAG", shape.frag)
        .define("SG", lanes)
        .define("WARPS_M", config.wm)
        .define("WARPS_N", config.wn)
        .define("WG", config.invocations(shape));
    match vector_width(k) {
        8 => kernel.define("VEC", 1).define("VEC8", 1),
        4 => kernel.define("VEC", 1),
        _ => kernel,
    }
}

#[doc(hidden)]
/// The same kernel with the cooperative operations emulated by plain loops (`EMULATE`),
/// `lanes` wide subgroups in a workgroup sized for `shape.subgroup` (lanes below it leave the
/// extra subgroups to staging, as a driver running narrower subgroups would). Slow: tests.
pub fn emulated_kernel(
    shape: Shape,
    lanes: u32,
    config: Config,
    epilogue: Epilogue,
    bias: bool,
    k: u32,
) -> Kernel {
    build(shape, lanes, config, epilogue, bias, k).define("EMULATE", 1)
}

/// Every real kernel at both fragment sizes, with 16-byte, 8-byte and scalar loads, at the
/// default configuration, and every other configuration's plain and GeGLU builds (for the
/// shader translation test).
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for frag in coop::FRAGS {
        let shape = Shape { frag, subgroup: 32 };
        for e in all_epilogues() {
            for bias in [false, true] {
                for k in [768, 772, 770] {
                    v.push(kernel(shape, DEFAULT, e, bias, k));
                }
            }
        }
        for c in &CANDIDATES[1..] {
            for e in [Epilogue::None, Epilogue::GeGlu(Activation::GeluErf)] {
                for k in [768, 770] {
                    v.push(kernel(shape, *c, e, true, k));
                }
            }
        }
    }
    v
}

/// One check case: a product of `t` rows, inner size `k` and `n` outputs with `epilogue`,
/// with or without a bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    pub t: usize,
    pub k: usize,
    pub n: usize,
    pub epilogue: Epilogue,
    pub bias: bool,
}

impl Case {
    pub const fn new(t: usize, k: usize, n: usize, epilogue: Epilogue, bias: bool) -> Case {
        Case {
            t,
            k,
            n,
            epilogue,
            bias,
        }
    }
}

/// Self-check cases: every (epilogue, bias) build the encoder can record, with T = 130
/// (ragged row tiles at both fragment sizes) and K cycling over the inputs of
/// ModernBERT-large's matmuls (1024 hidden, 2624 intermediate, 5248 its GeGLU pair), N off
/// the column tile (16-byte vector loads); plus a K off the 8-wide vectors (8-byte loads),
/// a short K off the 32-wide block and off the 4-wide vectors (scalar loads) and a single
/// row.
pub fn checks() -> Vec<Case> {
    const KS_LARGE: [usize; 3] = [1024, 2624, 5248];
    let mut v = Vec::new();
    for (i, e) in all_epilogues().into_iter().enumerate() {
        for bias in [false, true] {
            let k = KS_LARGE[(2 * i + usize::from(bias)) % KS_LARGE.len()];
            v.push(Case::new(130, k, 40, e, bias));
        }
    }
    v.push(Case::new(33, 100, 48, Epilogue::Residual, false));
    v.push(Case::new(70, 102, 90, Epilogue::None, true));
    v.push(Case::new(
        1,
        72,
        33,
        Epilogue::GeGlu(Activation::GeluErf),
        true,
    ));
    v
}

/// Self-check tolerance. Inputs are f16 (products exact in f32), sums f32 in the tensor
/// cores' order, output rounded once to f16 (2^-11 relative): a wrong kernel misses by O(1).
pub const CHECK_ATOL: f64 = 2e-3;
pub const CHECK_RTOL: f64 = 2e-3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_and_memory_follow_the_fragment_and_grid() {
        assert_eq!(tile(16, DEFAULT, Epilogue::None), (128, 64));
        assert_eq!(
            tile(8, DEFAULT, Epilogue::GeGlu(Activation::Relu)),
            (64, 16)
        );
        assert_eq!(tile(16, Config { wm: 1, wn: 4 }, Epilogue::None), (64, 128));
        const { assert!(DEFAULT.workgroup_bytes(16) <= 48 * 1024) };
        assert_eq!(DEFAULT.workgroup_bytes(16), 47104);
        assert_eq!(DEFAULT.workgroup_bytes(8), 19456);
        for c in CANDIDATES {
            assert_eq!(Config::parse(&c.name()), Some(c));
            assert!(c.workgroup_bytes(8) <= 48 * 1024, "{}", c.name());
        }
        assert_eq!(Config::parse("3x3w"), None);
    }

    #[test]
    fn candidates_fit_the_adapter() {
        let mut caps = Capabilities {
            max_workgroup_storage: 49152,
            max_invocations: 256,
            ..Default::default()
        };
        let s16 = Shape {
            frag: 16,
            subgroup: 32,
        };
        let names: Vec<String> = fitting(s16, &caps).iter().map(|c| c.name()).collect();
        assert_eq!(names, ["2x2w", "1x2w", "2x1w", "1x1w", "1x4w"]);
        assert_eq!(default_for(s16, &caps), DEFAULT);
        // 64-lane subgroups: eight warps are 512 invocations, over the limit.
        let s8 = Shape {
            frag: 8,
            subgroup: 64,
        };
        assert_eq!(fitting(s8, &caps).len(), 5);
        // 16 KiB: no tile at F = 16; at F = 8 the first candidate that fits.
        caps.max_workgroup_storage = 16384;
        assert!(fitting(s16, &caps).is_empty());
        assert_eq!(default_for(s8, &caps), Config { wm: 1, wn: 2 });
    }

    #[test]
    fn kernels_carry_their_shape() {
        let v = variants();
        assert_eq!(v.len(), 2 * (60 + 4 * (CANDIDATES.len() - 1)));
        assert!(v.iter().all(|k| k.shader == "matmul_coop"));
        let s = Shape {
            frag: 8,
            subgroup: 8,
        };
        let k = kernel(s, DEFAULT, Epilogue::Residual, true, 768);
        let name = k.name();
        assert!(
            name.contains("ELEM=f16") && name.contains("RESIDUAL=5"),
            "{name}"
        );
        assert!(name.contains("FRAG=8") && name.contains("WG=32"), "{name}");
        assert!(
            name.contains("WARPS_M=2") && name.contains("VEC=1,VEC8=1"),
            "{name}"
        );
        let quads = kernel(s, DEFAULT, Epilogue::None, false, 772).name();
        assert!(
            quads.contains("VEC=1") && !quads.contains("VEC8"),
            "{quads}"
        );
        let wide = kernel(s, Config { wm: 2, wn: 4 }, Epilogue::None, false, 768).name();
        assert!(
            wide.contains("WARPS_N=4") && wide.contains("WG=64"),
            "{wide}"
        );
        let e = emulated_kernel(s, 8, DEFAULT, Epilogue::None, false, 102).name();
        assert!(e.contains("EMULATE=1") && !e.contains("VEC"), "{e}");
        assert_eq!(checks().len(), 23);
    }
}
