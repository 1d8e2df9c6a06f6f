//! The shared-memory tiled matmul (`MatmulVariant::Tiled`, `shaders/matmul.wgsl`): 16 x 16
//! threads of `rm x rn` outputs each, output tiles of `16 rm x 16 rn`; any adapter, any
//! precision. The per-thread block is a tile configuration ([`Config`]): [`CANDIDATES`] are
//! the ones the autotuner (`ops::tune`) times on the device, [`DEFAULT`] is used untuned.

use super::kernel::{Epilogue, MatmulVariant, kernel as family_kernel};
use crate::ops::DType;
/// One tile configuration (defined with the other choices in `ops::choice`).
pub use crate::ops::choice::TiledConfig as Config;
use crate::runtime::{Capabilities, Kernel};

/// Threads along each side of the workgroup (16 x 16 = 256).
const THREADS: u32 = 16;
/// k per staged block (`TK` in the shader).
const TK: u32 = 16;

/// 64 x 64 outputs per workgroup: the configuration when nothing was tuned.
pub const DEFAULT: Config = Config { rm: 4, rn: 4 };

/// What the autotuner times: the default first, then smaller tiles (more workgroups for
/// narrow or short products) and larger ones (more reuse per staged element).
pub const CANDIDATES: [Config; 6] = [
    DEFAULT,
    Config { rm: 2, rn: 4 },
    Config { rm: 4, rn: 2 },
    Config { rm: 2, rn: 2 },
    Config { rm: 8, rn: 4 },
    Config { rm: 4, rn: 8 },
];

impl Config {
    /// Its name in listings and caches: the output tile, `64x64`.
    pub fn name(self) -> String {
        format!("{}x{}", THREADS * self.rm, THREADS * self.rn)
    }

    /// The configuration named `name` among the candidates.
    pub fn parse(name: &str) -> Option<Config> {
        CANDIDATES.into_iter().find(|c| c.name() == name)
    }

    /// Workgroup memory: the X and W blocks, `TK` k each, rows padded by one.
    pub fn workgroup_bytes(self) -> u32 {
        TK * (THREADS * self.rm + 1 + THREADS * self.rn + 1) * 4
    }

    /// Whether the adapter's limits allow it.
    pub fn fits(self, caps: &Capabilities) -> bool {
        self.workgroup_bytes() <= caps.max_workgroup_storage
    }
}

/// The candidates this device can run.
pub fn fitting(caps: &Capabilities) -> Vec<Config> {
    CANDIDATES.into_iter().filter(|c| c.fits(caps)).collect()
}

/// The output tile of one workgroup (rows, output columns) for `epilogue`.
pub fn tile(config: Config, epilogue: Epilogue) -> (u32, u32) {
    let (m, n) = (THREADS * config.rm, THREADS * config.rn);
    match epilogue {
        Epilogue::GeGlu(_) => (m, n / 2),
        _ => (m, n),
    }
}

/// The kernel of one precision, epilogue, bias presence and configuration.
pub fn kernel(dtype: DType, epilogue: Epilogue, bias: bool, config: Config) -> Kernel {
    family_kernel(MatmulVariant::Tiled, dtype, epilogue, bias)
        .define("RM", config.rm)
        .define("RN", config.rn)
}

/// The build for CPU adapters (`DIRECT` in the shader), for inner size `k`: each thread
/// reads its rows of X and W straight from the buffers, four k per load (`VEC`), with no
/// workgroup memory and no barrier. A software rasterizer pays per load instruction and
/// lane; this build makes a quarter of the staged build's loads (on Debian 12's lavapipe,
/// 4-5x the staged build's GFLOP/s in `bench --kernels`). `None` where `k` is not a
/// multiple of 4 (the staged build runs).
pub fn direct_kernel(
    dtype: DType,
    epilogue: Epilogue,
    bias: bool,
    config: Config,
    k: u32,
) -> Option<Kernel> {
    // DIRECT and VEC before the tile, so that names read `..,RM=4,RN=4,ROPE=..` as the
    // staged build's do.
    k.is_multiple_of(4).then(|| {
        family_kernel(MatmulVariant::Tiled, dtype, epilogue, bias)
            .define("DIRECT", 1)
            .define("VEC", 1)
            .define("RM", config.rm)
            .define("RN", config.rn)
    })
}

/// The build that runs on this adapter for inner size `k`: `direct_kernel` on a CPU
/// adapter where it applies, else the staged `kernel`. `record`, the tuner's checks and
/// timings and `bench --kernels` all take their tiled builds from here.
pub fn build(
    caps: &Capabilities,
    dtype: DType,
    epilogue: Epilogue,
    bias: bool,
    config: Config,
    k: u32,
) -> Kernel {
    caps.cpu
        .then(|| direct_kernel(dtype, epilogue, bias, config, k))
        .flatten()
        .unwrap_or_else(|| kernel(dtype, epilogue, bias, config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Activation;

    #[test]
    fn configurations_name_their_tiles_and_fit_16_kib() {
        assert_eq!(DEFAULT.name(), "64x64");
        assert_eq!(tile(DEFAULT, Epilogue::GeGlu(Activation::Relu)), (64, 32));
        assert_eq!(tile(Config { rm: 2, rn: 4 }, Epilogue::None), (32, 64));
        for c in CANDIDATES {
            assert_eq!(Config::parse(&c.name()), Some(c));
            assert!(c.workgroup_bytes() <= 16384, "{}", c.name());
            assert!(c.rn.is_multiple_of(2), "GeGLU pairs values with gates");
        }
        assert_eq!(Config::parse("7x7"), None);
    }
}
