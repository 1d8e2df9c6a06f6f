//! The tensor-core matmul (`MatmulVariant::Coop`, `shaders/matmul_coop.wgsl`): cooperative
//! f16 matrices of the shape the adapter reports (`ops::coop::Shape`: 16x16x16, 16x8x16,
//! 16x8x8, 8x16x16, 8x8x16 or 8x8x8) with f32 accumulators, warp tiles laid out in a grid
//! per workgroup (the tile configuration, [`Config`]), one subgroup of the size the driver
//! runs cooperative matrices at (8 to 64) per warp tile. A warp tile is 32 columns wide and
//! as tall as `Config::acc` accumulator values per lane allow: its register budget, the same
//! on every shape and subgroup size. Inputs are staged through two K blocks of workgroup
//! memory, the next one while the current one is multiplied; where K is a multiple of 8 (of
//! 4) with 16-byte (8-byte) vector loads. Same bindings,
//! parameters and epilogues as the tiled kernel; f16 storage only.
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
use crate::ops::coop::{self, FRAGMENTS, Shape};
use crate::ops::{Activation, DType};
use crate::runtime::{Capabilities, Kernel};

/// Row stride in halves of the staged X and W rows (32 k each, padded).
const LDS: u32 = 40;
/// Columns of a warp tile.
const WARP_COLUMNS: u32 = 32;

/// 2 x 2 warp tiles of 32 accumulator values per lane: the configuration when nothing was
/// tuned (on NVIDIA, 16x16x16 at 32 lanes: 64 x 64 outputs, 2 x 2 fragments per warp).
pub const DEFAULT: Config = Config {
    wm: 2,
    wn: 2,
    acc: 32,
};

/// What the autotuner times: the default first, then fewer warps (more workgroups for short
/// or narrow products, less workgroup memory), wider or taller grids (more reuse of each
/// staged element) where the adapter's workgroup memory allows, and warp tiles of twice the
/// accumulators (more reuse of each fragment, more registers).
pub const CANDIDATES: [Config; 12] = [
    DEFAULT,
    Config {
        wm: 1,
        wn: 2,
        acc: 32,
    },
    Config {
        wm: 2,
        wn: 1,
        acc: 32,
    },
    Config {
        wm: 1,
        wn: 1,
        acc: 32,
    },
    Config {
        wm: 2,
        wn: 4,
        acc: 32,
    },
    Config {
        wm: 4,
        wn: 2,
        acc: 32,
    },
    Config {
        wm: 2,
        wn: 2,
        acc: 64,
    },
    Config {
        wm: 1,
        wn: 2,
        acc: 64,
    },
    Config {
        wm: 2,
        wn: 2,
        acc: 16,
    },
    Config {
        wm: 2,
        wn: 2,
        acc: 8,
    },
    Config {
        wm: 2,
        wn: 4,
        acc: 8,
    },
    Config {
        wm: 4,
        wn: 2,
        acc: 16,
    },
];

impl Config {
    /// Its name in listings and caches: the warp grid and the accumulators per lane,
    /// `2x2w32`.
    pub fn name(self) -> String {
        format!("{}x{}w{}", self.wm, self.wn, self.acc)
    }

    /// The configuration named `name` among the candidates.
    pub fn parse(name: &str) -> Option<Config> {
        CANDIDATES.into_iter().find(|c| c.name() == name)
    }

    /// Warp tiles (subgroups that multiply) per workgroup.
    pub const fn warps(self) -> u32 {
        self.wm * self.wn
    }

    /// Fragments of one warp tile at `shape` (rows, columns): 32 columns, and the rows that
    /// make `acc` accumulator values per lane (at least one fragment).
    pub const fn warp_tile(self, shape: Shape) -> (u32, u32) {
        let cols = WARP_COLUMNS / shape.n;
        let per_frag_row = cols * shape.m * shape.n / shape.subgroup;
        let rows = self.acc / per_frag_row;
        (if rows == 0 { 1 } else { rows }, cols)
    }

    /// The output tile of one workgroup at `shape` (rows, W rows).
    pub const fn tile_at(self, shape: Shape) -> (u32, u32) {
        let (fm, fn_) = self.warp_tile(shape);
        (fm * shape.m * self.wm, fn_ * shape.n * self.wn)
    }

    /// Workgroup memory at `shape`: two K blocks of the tile's X and W rows in f16, and the
    /// f32 staging tile of one fragment row of every warp tile.
    pub const fn workgroup_bytes(self, shape: Shape) -> u32 {
        let (tm, tn) = self.tile_at(shape);
        2 * (tm + tn) * LDS * 2 + self.wm * shape.m * tn * 4
    }

    /// Invocations of one workgroup: one subgroup per warp tile.
    pub const fn invocations(self, shape: Shape) -> u32 {
        self.warps() * shape.subgroup
    }

    /// Why the adapter's limits do not allow it at `shape`, if they do not.
    pub fn misfit(self, shape: Shape, caps: &Capabilities) -> Option<String> {
        let bytes = self.workgroup_bytes(shape);
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

/// The candidates at `shape`: [`CANDIDATES`] that build distinct kernels there, but on Intel
/// Xe2's 8x16x16 only 2 x 4 warp tiles of 8 accumulators. Intel's compiler builds cooperative-matrix shaders
/// at SIMD32 there, where every other candidate spills to memory (`docs/gpu-compilers.md`):
/// they can never meet the budget, so they are not tuned.
pub fn candidates_at(shape: Shape) -> Vec<Config> {
    if (shape.m, shape.n, shape.k) == (8, 16, 16) {
        return vec![preferred(shape)];
    }
    // Accumulator budgets under one fragment row build the same kernel: the first only.
    let mut out: Vec<Config> = Vec::new();
    for c in CANDIDATES {
        let same =
            |o: &Config| (o.wm, o.wn, o.warp_tile(shape)) == (c.wm, c.wn, c.warp_tile(shape));
        if !out.iter().any(same) {
            out.push(c);
        }
    }
    out
}

/// The candidates the adapter can run at `shape`.
pub fn fitting(shape: Shape, caps: &Capabilities) -> Vec<Config> {
    candidates_at(shape)
        .into_iter()
        .filter(|c| c.misfit(shape, caps).is_none())
        .collect()
}

/// The configuration a first run takes at `shape`, from the drivers' statistics
/// (`docs/gpu-compilers.md`): 2 x 2 warp tiles of 32 accumulator values per lane, a 32 x 32
/// warp tile at 32 lanes (80 registers on NVIDIA, 24 of 48 warps); of 16 at 64 lanes (RDNA's
/// wave64: 60 VGPRs and twice the waves per SIMD of 32's 84); 2 x 4 warp tiles of 8 on Intel
/// Xe2's 8x16x16 (compiled SIMD32, where a lane's 32 accumulators spill to memory, and 2 x 2
/// tiles of 8 still spill two values but for the RoPE and GeGLU builds).
pub fn preferred(shape: Shape) -> Config {
    match (shape.m, shape.n, shape.k, shape.subgroup) {
        (8, 16, 16, _) => Config {
            wm: 2,
            wn: 4,
            acc: 8,
        },
        (_, _, _, 64) => Config { acc: 16, ..DEFAULT },
        _ => DEFAULT,
    }
}

/// The configuration used untuned: [`preferred`] where it fits, else the first candidate
/// that does (`supported` makes sure one does).
pub fn default_for(shape: Shape, caps: &Capabilities) -> Config {
    let fits = fitting(shape, caps);
    if fits.contains(&preferred(shape)) {
        return preferred(shape);
    }
    fits.first().copied().unwrap_or(DEFAULT)
}

/// Why the kernel is never run at `shape` though the adapter reports it, if so: Intel
/// Xe-HPG's 8x8x16. Intel's compiler builds cooperative-matrix shaders at SIMD32 unless the
/// pipeline asks for another subgroup size, which wgpu cannot; at SIMD32 a value per lane
/// takes 4 of a Xe-HPG thread's 128 registers, and every tile configuration, down to one
/// fragment per subgroup, spills to memory there (`docs/gpu-compilers.md`).
pub fn unused_at(shape: Shape) -> Option<&'static str> {
    ((shape.m, shape.n, shape.k) == (8, 8, 16)).then_some(
        "Intel Xe-HPG's 8x8x16 compiles at SIMD32, where every tile configuration spills to \
         memory (wgpu cannot ask for SIMD8)",
    )
}

/// The output tile of one workgroup (rows, output columns) at `shape`.
pub fn tile(shape: Shape, config: Config, epilogue: Epilogue) -> (u32, u32) {
    let (tm, tn) = config.tile_at(shape);
    match epilogue {
        Epilogue::GeGlu(_) => (tm, tn / 2),
        _ => (tm, tn),
    }
}

/// The shape this kernel runs at on the adapter, or why it cannot run there (no
/// cooperative matrices, a shape it is never run at, or limits too small for even the
/// smallest tile).
pub fn supported(caps: &Capabilities) -> std::result::Result<Shape, String> {
    let s = coop::shape(caps)?;
    if let Some(why) = unused_at(s) {
        return Err(why.into());
    }
    if fitting(s, caps).is_empty() {
        let smallest = CANDIDATES[3];
        return Err(smallest
            .misfit(s, caps)
            .unwrap_or_else(|| "no tile configuration fits".into()));
    }
    Ok(s)
}

/// The real kernel for `epilogue`, with or without bias, at `shape` and `config`, for inner
/// size `k`: vector loads (`VEC`), 16 bytes where `k` is a
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
    let (fm, fn_) = config.warp_tile(shape);
    let kernel = family_kernel(MatmulVariant::Coop, DType::F16, epilogue, bias);
    let kernel = shape
        .apply(kernel, lanes)
        .define("WARPS_M", config.wm)
        .define("WARPS_N", config.wn)
        .define("WTM", fm)
        .define("WTN", fn_)
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
    let mut k = build(shape, lanes, config, epilogue, bias, k).define("EMULATE", 1);
    // Emulated fragments are plain arrays: nothing to reshape.
    k.coop_shape = None;
    k
}

/// Every real kernel at every fragment shape (at its vendor's subgroup size), with 16-byte,
/// 8-byte and scalar loads, at the default configuration, and every other configuration's
/// plain and GeGLU builds (for the shader translation test).
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for f in FRAGMENTS {
        let shape = Shape::of(f, 32);
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
    fn tiles_and_memory_follow_the_shape_and_grid() {
        let nv = Shape::square(16, 32);
        assert_eq!(DEFAULT.warp_tile(nv), (2, 2));
        assert_eq!(tile(nv, DEFAULT, Epilogue::None), (64, 64));
        let big = Config { acc: 64, ..DEFAULT };
        assert_eq!(tile(nv, big, Epilogue::None), (128, 64));
        assert_eq!(big.workgroup_bytes(nv), 2 * 192 * 40 * 2 + 32 * 64 * 4);
        // 32 accumulators per lane at every shape and subgroup size.
        for (shape, wt) in [
            (Shape::of([16, 8, 16], 32), (2, 4)),
            (Shape::of([16, 8, 8], 32), (2, 4)),
            (Shape::of([8, 16, 16], 16), (2, 2)),
            (Shape::of([8, 8, 16], 8), (1, 4)),
            (Shape::square(8, 8), (1, 4)),
            (Shape::square(8, 32), (4, 4)),
            (Shape::square(16, 64), (4, 2)),
        ] {
            assert_eq!(DEFAULT.warp_tile(shape), wt, "{}", shape.name());
            let (fm, fn_) = wt;
            assert_eq!(fm * fn_ * shape.m * shape.n / shape.subgroup, 32);
        }
        assert_eq!(
            tile(
                Shape::square(8, 8),
                DEFAULT,
                Epilogue::GeGlu(Activation::Relu)
            ),
            (16, 32)
        );
        for c in CANDIDATES {
            assert_eq!(Config::parse(&c.name()), Some(c));
            for f in FRAGMENTS {
                assert!(
                    c.workgroup_bytes(Shape::of(f, 32)) <= 48 * 1024,
                    "{}",
                    c.name()
                );
            }
        }
        assert_eq!(Config::parse("3x3w32"), None);
    }

    #[test]
    fn candidates_fit_the_adapter() {
        let mut caps = Capabilities {
            max_workgroup_storage: 49152,
            max_invocations: 256,
            ..Default::default()
        };
        let s16 = Shape::square(16, 32);
        let names: Vec<String> = fitting(s16, &caps).iter().map(|c| c.name()).collect();
        assert_eq!(
            names,
            [
                "2x2w32", "1x2w32", "2x1w32", "1x1w32", "2x4w32", "4x2w32", "2x2w64", "1x2w64",
                "2x2w16", "2x4w8", "4x2w16"
            ]
        );
        assert_eq!(default_for(s16, &caps), DEFAULT);
        // 64-lane subgroups: eight warps are 512 invocations, over the limit.
        let s64 = Shape::square(16, 64);
        assert_eq!(fitting(s64, &caps).len(), 7);
        // 8 KiB: only the smallest tiles.
        caps.max_workgroup_storage = 8192;
        assert!(fitting(s16, &caps).is_empty());
        assert_eq!(default_for(Shape::square(8, 8), &caps), CANDIDATES[3]);
    }

    #[test]
    fn defaults_follow_the_vendors_registers() {
        let caps = Capabilities {
            max_workgroup_storage: 65536,
            max_invocations: 1024,
            ..Default::default()
        };
        let name = |s| default_for(s, &caps).name();
        assert_eq!(name(Shape::square(16, 32)), "2x2w32");
        assert_eq!(name(Shape::of([16, 8, 8], 32)), "2x2w32");
        assert_eq!(name(Shape::square(16, 64)), "2x2w16");
        assert_eq!(name(Shape::of([8, 16, 16], 32)), "2x4w8");
        assert_eq!(name(Shape::square(8, 8)), "2x2w32");
        assert!(unused_at(Shape::of([8, 8, 16], 32)).is_some());
        assert!(unused_at(Shape::of([8, 16, 16], 32)).is_none());
        for s in [[16, 16, 16], [8, 16, 16]] {
            let d = default_for(Shape::of(s, 32), &caps);
            assert!(CANDIDATES.contains(&d), "{}", d.name());
        }
        let xe2 = Shape::of([8, 16, 16], 32);
        assert_eq!(fitting(xe2, &caps), [preferred(xe2)]);
        // 2x2w8 builds 2x2w16's kernel at 16 x 16 fragments (one fragment row either way).
        assert_eq!(
            fitting(Shape::square(16, 32), &caps).len(),
            CANDIDATES.len() - 1
        );
        assert_eq!(candidates_at(Shape::square(8, 8)).len(), 8);
    }

    #[test]
    fn kernels_carry_their_shape() {
        let v = variants();
        assert_eq!(v.len(), FRAGMENTS.len() * (60 + 4 * (CANDIDATES.len() - 1)));
        assert!(v.iter().all(|k| k.shader == "matmul_coop"));
        let s = Shape::square(8, 8);
        let k = kernel(s, DEFAULT, Epilogue::Residual, true, 768);
        let name = k.name();
        assert!(
            name.contains("ELEM=f16") && name.contains("RESIDUAL=5"),
            "{name}"
        );
        assert!(
            name.contains("FM=8,FN=8,FK=8") && name.contains("WG=32"),
            "{name}"
        );
        assert!(
            name.contains("WARPS_M=2,WARPS_N=2,WTM=1,WTN=4") && name.contains("VEC=1,VEC8=1"),
            "{name}"
        );
        let quads = kernel(s, DEFAULT, Epilogue::None, false, 772).name();
        assert!(
            quads.contains("VEC=1") && !quads.contains("VEC8"),
            "{quads}"
        );
        let nv = kernel(
            Shape::of([16, 8, 8], 32),
            DEFAULT,
            Epilogue::None,
            false,
            768,
        );
        assert_eq!(nv.coop_shape, Some([16, 8, 8]));
        let e = emulated_kernel(
            Shape::of([16, 8, 8], 32),
            8,
            DEFAULT,
            Epilogue::None,
            false,
            102,
        );
        assert!(e.name().contains("EMULATE=1") && !e.name().contains("VEC"));
        assert_eq!(e.coop_shape, None);
        assert_eq!(checks().len(), 23);
    }
}
