//! Every kernel build the engine can make on one adapter, by family, and which of them a
//! first run takes by default: what `wgbert kernels --compile` hands to the driver, one
//! pipeline at a time, so that a driver's compiler statistics (registers, spills,
//! occupancy) can be attributed to a kernel.
//!
//! The tuned families list every tile candidate that fits the adapter: the tiled matmul as
//! the adapter builds it (`tiled::build`: staged on a GPU, `DIRECT` on a CPU adapter), the
//! tensor-core matmul and attention at each fragment shape the adapter reports that the
//! kernels are written for, the portable attention at every head size. Epilogues are the
//! ones a ModernBERT graph records (plain, RoPE fused into the store where the tile holds
//! whole heads, residual, the activation of a head, GeGLU), with its activation (exact
//! GELU) and no bias; `every` adds every activation, bias and vector-load width. The other
//! families list the builds of their reduction flavour on this adapter, in each precision
//! it has.
//!
//! A build is marked `default` where a first run records it with nothing tuned: the
//! default tile configuration of the variant the automatic choice takes (assuming the
//! tensor-core self-checks pass, as they do on a working GPU), every build of an untuned
//! family.

use crate::ops::attention::{self, Tiles};
use crate::ops::coop::{self as coop_mode, Shape};
use crate::ops::matmul::{self, Epilogue, MatmulVariant, coop, tiled};
use crate::ops::rownorm::Reduce;
use crate::ops::{
    Activation, DType, convert, embedding, gather, layernorm, pooling, rope, splade, topk,
};
use crate::runtime::{Capabilities, Kernel};

/// ModernBERT's head size: the RoPE-fused Wqkv builds are listed for it.
const HEAD_DIM: u32 = 64;
/// ModernBERT's inner sizes are multiples of 8: 16-byte loads in the tensor-core matmul.
const K: u32 = 768;

/// One build of a kernel on an adapter.
#[derive(Debug, Clone)]
pub struct Listed {
    pub kernel: Kernel,
    /// `matmul_tiled`, `matmul_subgroup`, `matmul_coop`, `attention`, `attention_coop`,
    /// `layernorm`, `embedding`, `pooling`, `gather`, `topk`, `splade`, `convert`, `rope`.
    pub family: &'static str,
    /// The fragment shape of a tensor-core build, `MxNxK`.
    pub fragment: Option<String>,
    /// The tile configuration of a tuned family's build (`64x64`, `2x2w`, `64x32`).
    pub config: Option<String>,
    /// Whether a first run (nothing tuned, self-checks passed) records it.
    pub default: bool,
    /// Why the engine never runs this build on the adapter, for builds listed only so that
    /// the driver's compiler meets them (a fragment shape the adapter reports that a family
    /// is not run at: `matmul::coop::unused_at`, `attention::coop::unused_at`).
    pub unused: Option<&'static str>,
}

impl Listed {
    fn new(family: &'static str, kernel: Kernel, default: bool) -> Listed {
        Listed {
            kernel,
            family,
            fragment: None,
            config: None,
            default,
            unused: None,
        }
    }
}

/// Every build of every family on an adapter of `caps` (see the module docs); `every` adds
/// every activation, bias and load width of the matmuls.
pub fn for_adapter(caps: &Capabilities, every: bool) -> Vec<Listed> {
    let dtypes: Vec<DType> = match caps.f16 {
        true => vec![DType::F32, DType::F16],
        false => vec![DType::F32],
    };
    let mut out = Vec::new();
    out.extend(matmuls(caps, &dtypes, every));
    out.extend(attentions(caps, &dtypes));
    // Layer norms and embeddings come in both reduction flavours: the adapter's only.
    let subgroup = Reduce::best(caps) == Reduce::Subgroup;
    let fits = |k: &Kernel, flavoured: bool| {
        let has = |key: &str| k.defines.iter().any(|(a, _)| a == key);
        (caps.f16 || !has("F16")) && (!flavoured || has("SUBGROUP") == subgroup)
    };
    let rows: [(&'static str, Vec<Kernel>, bool); 8] = [
        ("layernorm", layernorm::variants(), true),
        ("embedding", embedding::variants(), true),
        ("pooling", pooling::variants(), false),
        ("rope", rope::variants(), false),
        ("gather", gather::variants(), false),
        ("convert", convert::variants(), false),
        ("topk", topk::variants(), false),
        ("splade", splade::variants(), false),
    ];
    for (family, kernels, flavoured) in rows {
        let listed = kernels.into_iter().filter(|k| fits(k, flavoured));
        out.extend(listed.map(|k| Listed::new(family, k, true)));
    }
    out
}

/// The tensor-core build of each family (`matmul`, `attention`) that a first run takes on an
/// adapter of `caps` once its self-check passes: `matmul_coop 16x16x16 sg32 2x2w32` (kernel,
/// fragment shape, subgroup size, tile configuration), or why the family has none there.
pub fn tensor_cores(
    caps: &Capabilities,
) -> Vec<(&'static str, std::result::Result<String, String>)> {
    let matmul = coop::supported(caps).map(|s| {
        let config = coop::default_for(s, caps).name();
        format!("matmul_coop {} sg{} {config}", s.name(), s.subgroup)
    });
    let storage = caps.max_workgroup_storage;
    let attention = attention::coop::supported(caps).and_then(|s| {
        let tiles = attention::coop::default_tiles(HEAD_DIM, storage)
            .ok_or_else(|| "no tile configuration fits".to_string())?;
        Ok(format!(
            "attention_coop {} sg{} {}",
            s.name(),
            s.subgroup,
            tiles.name()
        ))
    });
    vec![("matmul", matmul), ("attention", attention)]
}

/// The fragment shapes the tensor-core kernels are written for that the adapter reports
/// (largest first), at its largest subgroup size.
pub fn coop_shapes(caps: &Capabilities) -> Vec<Shape> {
    coop_mode::shapes(caps).unwrap_or_default()
}

fn fragment(shape: Shape) -> String {
    shape.name()
}

/// The epilogues listed, with bias or not, and the inner sizes (load widths) of the
/// tensor-core builds.
fn epilogues(every: bool) -> (Vec<(Epilogue, bool)>, Vec<u32>) {
    if every {
        let all = matmul::all_epilogues();
        let both = all.iter().flat_map(|&e| [(e, false), (e, true)]).collect();
        return (both, vec![K, K + 4, K + 2]);
    }
    let gelu = Activation::GeluErf;
    let model = [
        Epilogue::None,
        Epilogue::Residual,
        Epilogue::Act(gelu),
        Epilogue::GeGlu(gelu),
    ];
    (model.map(|e| (e, false)).to_vec(), vec![K])
}

/// The plain build and, where its tile holds whole heads, the RoPE-fused one.
fn with_rope(kernel: Kernel, tile: (u32, u32), epilogue: Epilogue, bias: bool) -> Vec<Kernel> {
    let fused =
        epilogue == Epilogue::None && !bias && matmul::rope_fusable(&kernel, tile, HEAD_DIM);
    let rope = fused.then(|| matmul::with_rope(kernel.clone(), HEAD_DIM));
    std::iter::once(kernel).chain(rope).collect()
}

fn matmuls(caps: &Capabilities, dtypes: &[DType], every: bool) -> Vec<Listed> {
    let (epis, ks) = epilogues(every);
    let shapes = coop_shapes(caps);
    let mut out = Vec::new();
    for &dtype in dtypes {
        // On an adapter with tensor cores an f16 model runs them in place of the tiled
        // kernel (once their self-check passed).
        let tiled_default = dtype == DType::F32 || coop::supported(caps).is_err();
        for config in tiled::fitting(caps) {
            for &(e, bias) in &epis {
                let kernel = tiled::build(caps, dtype, e, bias, config, K);
                for k in with_rope(kernel, tiled::tile(config, e), e, bias) {
                    out.push(Listed {
                        config: Some(config.name()),
                        ..Listed::new("matmul_tiled", k, tiled_default && config == tiled::DEFAULT)
                    });
                }
            }
        }
        if caps.subgroups {
            for &(e, bias) in &epis {
                let k = matmul::kernel(MatmulVariant::Subgroup, dtype, e, bias);
                out.push(Listed::new("matmul_subgroup", k, true));
            }
        }
    }
    if !caps.f16 {
        return out;
    }
    // The engine runs the preferred shape (the first); every other shape the adapter
    // reports is listed too, so that each one's builds meet the driver's compiler. A shape
    // the kernel is never run at is listed at its default configuration only.
    let usable: Vec<Shape> = shapes
        .iter()
        .copied()
        .filter(|&s| coop::unused_at(s).is_none())
        .collect();
    for &shape in &shapes {
        let unused = coop::unused_at(shape);
        let default = (usable.first() == Some(&shape)).then(|| coop::default_for(shape, caps));
        let configs = match unused {
            None => coop::fitting(shape, caps),
            Some(_) => vec![coop::default_for(shape, caps)],
        };
        for config in configs {
            for &(e, bias) in &epis {
                for &k in &ks {
                    let kernel = coop::kernel(shape, config, e, bias, k);
                    let tile = coop::tile(shape, config, e);
                    for kernel in with_rope(kernel, tile, e, bias) {
                        out.push(Listed {
                            fragment: Some(fragment(shape)),
                            config: Some(config.name()),
                            unused,
                            ..Listed::new("matmul_coop", kernel, Some(config) == default)
                        });
                    }
                }
            }
        }
    }
    out
}

fn attentions(caps: &Capabilities, dtypes: &[DType]) -> Vec<Listed> {
    let shapes = coop_shapes(caps);
    let coop_ok = attention::coop::supported(caps).is_ok();
    let storage = caps.max_workgroup_storage;
    let mut out = Vec::new();
    for &dtype in dtypes {
        let portable_default = dtype == DType::F32 || !coop_ok || shapes.is_empty();
        for d in attention::HEAD_DIMS {
            let default = Tiles::default_for(d, caps);
            let mut tiles = vec![default];
            tiles.extend(
                attention::fitting(d, caps)
                    .into_iter()
                    .filter(|&t| t != default),
            );
            for t in tiles.into_iter().filter(|t| t.fits(d, caps)) {
                out.push(Listed {
                    config: Some(t.name()),
                    ..Listed::new(
                        "attention",
                        attention::kernel(caps, dtype, d, t),
                        portable_default && t == default,
                    )
                });
            }
        }
    }
    if !caps.f16 {
        return out;
    }
    let usable: Vec<Shape> = shapes
        .iter()
        .copied()
        .filter(|&s| attention::coop::unused_at(s).is_none())
        .collect();
    for &shape in &shapes {
        let unused = attention::coop::unused_at(shape);
        if unused.is_none() && !coop_ok {
            continue;
        }
        for d in attention::coop::HEAD_DIMS {
            let first = usable.first() == Some(&shape);
            let default = attention::coop::default_tiles(d, storage).filter(|_| first);
            let tiles = match unused {
                None => attention::coop::fitting(d, storage),
                Some(_) => attention::coop::default_tiles(d, storage)
                    .into_iter()
                    .collect(),
            };
            for t in tiles {
                if let Some(k) = attention::coop::kernel(shape, d, t, storage) {
                    out.push(Listed {
                        fragment: Some(fragment(shape)),
                        config: Some(t.name()),
                        unused,
                        ..Listed::new("attention_coop", k, Some(t) == default)
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::CoopShape;

    fn caps(shapes: &[[u32; 3]], lanes: u32) -> Capabilities {
        Capabilities {
            f16: true,
            subgroups: true,
            subgroup_min_size: 8,
            subgroup_max_size: lanes,
            coop_matrix: shapes
                .iter()
                .map(|&[m, n, k]| CoopShape {
                    m,
                    n,
                    k,
                    acc: "f32",
                })
                .collect(),
            max_workgroup_storage: 49152,
            max_invocations: 1024,
            ..Default::default()
        }
    }

    fn builds(caps: &Capabilities) -> Vec<std::result::Result<String, String>> {
        tensor_cores(caps).into_iter().map(|(_, b)| b).collect()
    }

    #[test]
    fn tensor_cores_name_each_chips_builds_or_why_none() {
        let nvidia = caps(&[[16, 16, 16], [16, 8, 16], [16, 8, 8]], 32);
        let families: Vec<&str> = tensor_cores(&nvidia).iter().map(|f| f.0).collect();
        assert_eq!(families, ["matmul", "attention"]);
        assert_eq!(
            builds(&nvidia),
            [
                Ok("matmul_coop 16x16x16 sg32 2x2w32".to_string()),
                Ok("attention_coop 16x16x16 sg32 32x32".to_string())
            ]
        );
        // NVIDIA's non-square shapes alone: the first one reported.
        let b = builds(&caps(&[[16, 8, 8]], 32));
        assert_eq!(b[0].as_deref(), Ok("matmul_coop 16x8x8 sg32 2x2w32"));
        // Intel Xe-HPG: neither family runs at 8x8x16 (SIMD32 spills); Xe2 runs the matmul.
        for b in builds(&caps(&[[8, 8, 16]], 32)) {
            assert!(b.as_ref().is_err_and(|e| e.contains("SIMD")), "{b:?}");
        }
        let xe2 = builds(&caps(&[[8, 16, 16]], 32));
        assert_eq!(xe2[0].as_deref(), Ok("matmul_coop 8x16x16 sg32 2x4w8"));
        assert!(xe2[1].as_ref().is_err_and(|e| e.contains("SIMD32")));
        // No cooperative matrices: both say so.
        for b in builds(&caps(&[], 64)) {
            assert!(b.is_err_and(|e| e.contains("no cooperative matrices")));
        }
    }
}
