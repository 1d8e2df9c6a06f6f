//! The tensor-core matmul (`MatmulVariant::Coop`, `shaders/matmul_coop.wgsl`): cooperative
//! 16x16x16 f16 matrices with f32 accumulators, 128x64 output tiles (128x32 for GeGLU) of
//! four 32-wide subgroups, same bindings, parameters and epilogues as the tiled kernel.
//!
//! This module owns what is particular to it: whether an adapter can run it, its dispatch
//! math, its kernel variants, the emulated build that tests its tiling on adapters without
//! cooperative matrices, and the run-time self-check. Drivers can advertise cooperative
//! matrices and compute wrong answers, so before `matmul::record` chooses this variant by
//! itself on a device, it runs it once on awkward shapes against the CPU reference; the
//! verdict is kept per adapter for the process. `WGBERT_COOP=0` turns the automatic choice
//! off. A forced `MatmulVariant::Coop` (tests, benchmarks) skips the self-check.

use std::sync::Arc;

use crate::ops::coop::{Verdicts, enabled_by_env};
use crate::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant};
use crate::ops::{Activation, DType, Rows};
use crate::runtime::{Capabilities, Gpu, Kernel, PlanBuilder, RunSizes};
use crate::{Error, Result};

/// Rows and output columns of one workgroup's tile (columns halve for GeGLU).
pub const TILE_M: u32 = 128;
pub const TILE_N: u32 = 64;
/// Invocations of one workgroup: four subgroups of `SUBGROUP_SIZE`.
pub const INVOCATIONS: u32 = 128;
/// The subgroup width the warp tiling is written for (one warp tile per subgroup).
pub const SUBGROUP_SIZE: u32 = 32;
/// Workgroup memory of the kernel: two K blocks of X and W in f16 and the f32 staging tile.
pub const WORKGROUP_BYTES: u32 = 2 * (128 + 64) * 40 * 2 + 64 * 64 * 4;

/// Whether the adapter can run the kernel: 16x16x16 f16 cooperative matrices with f32
/// accumulators, f16 shaders, subgroups fixed at 32 lanes (so 128 invocations are exactly the
/// four subgroups the tile is split into) and enough workgroup memory. Vulkan only in
/// practice: naga has no HLSL path for cooperative matrices, and Metal reports 8x8 shapes.
pub fn supported(caps: &Capabilities) -> bool {
    caps.f16
        && caps.coop_16x16_f32()
        && caps.subgroups
        && caps.subgroup_min_size == SUBGROUP_SIZE
        && caps.subgroup_max_size == SUBGROUP_SIZE
        && caps.max_workgroup_storage >= WORKGROUP_BYTES
        && caps.max_invocations >= INVOCATIONS
}

/// Row tiles and column tiles covering `rows` x `n` outputs.
pub fn tiles(epilogue: Epilogue, rows: u32, n: u32) -> (u32, u32) {
    let cols = match epilogue {
        Epilogue::GeGlu(_) => TILE_N / 2,
        _ => TILE_N,
    };
    (rows.div_ceil(TILE_M), n.div_ceil(cols))
}

/// The kernel for `epilogue`, with or without bias (f16 storage only).
pub fn kernel(epilogue: Epilogue, bias: bool) -> Kernel {
    matmul::kernel(MatmulVariant::Coop, DType::F16, epilogue, bias)
}

/// The same kernel with the cooperative-matrix operations emulated by plain loops (the
/// `EMULATE` define): slow, for testing the tiling, staging and epilogue on any adapter.
pub fn emulated_kernel(epilogue: Epilogue, bias: bool) -> Kernel {
    kernel(epilogue, bias).define("EMULATE", 1)
}

fn epilogues() -> Vec<Epilogue> {
    let acts = [
        Activation::GeluErf,
        Activation::GeluTanh,
        Activation::Silu,
        Activation::Relu,
    ];
    let mut e = vec![Epilogue::None, Epilogue::Residual];
    e.extend(acts.iter().map(|&a| Epilogue::Act(a)));
    e.extend(acts.iter().map(|&a| Epilogue::GeGlu(a)));
    e
}

/// Every cooperative-matrix kernel (for the shader translation test); the emulated builds
/// are test-only and not listed.
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for e in epilogues() {
        for bias in [false, true] {
            v.push(kernel(e, bias));
        }
    }
    v
}

/// Records one matmul with the emulated kernel (tests on adapters without cooperative
/// matrices). Same arguments and checks as `matmul::record`; `args.variant` is ignored.
pub fn record_emulated(b: &mut PlanBuilder, label: &str, args: &MatmulArgs) -> Result<()> {
    if args.dtype != DType::F16 {
        return Err(Error::Unsupported(format!(
            "matmul '{label}': the Coop variant stores f16 only"
        )));
    }
    let cap = matmul::check(b, label, args)?;
    let k = emulated_kernel(args.epilogue, args.bias.is_some());
    matmul::record_step(
        b,
        label.to_string(),
        k,
        args,
        MatmulVariant::Coop,
        cap,
        0,
        u32::MAX,
    )
}

/// Whether `matmul::record` may choose Coop on its own for `dtype` on this device: supported,
/// f16, not turned off by `WGBERT_COOP=0`, and the self-check (run on first use, kept per
/// adapter) agrees with the CPU reference. A failed check logs a warning once.
pub fn usable(gpu: &Arc<Gpu>, dtype: DType) -> bool {
    static VERDICTS: Verdicts = Verdicts::new("matmul", "tiled kernel");
    dtype == DType::F16
        && supported(gpu.caps())
        && enabled_by_env()
        && VERDICTS.verified(gpu, self_check)
}

/// Shapes of the self-check (T, K, N, epilogue, bias): two row tiles with a ragged last one,
/// K off the 32-block grid, N off the column tile, and GeGLU's paired halves.
const CHECKS: &[(usize, usize, usize, Epilogue, bool)] = &[
    (150, 100, 90, Epilogue::None, true),
    (70, 72, 40, Epilogue::GeGlu(Activation::GeluErf), true),
];

/// Self-check tolerance. Inputs are f16 (products exact in f32), sums f32 in the tensor
/// cores' order, output rounded once to f16 (2^-11 relative): a wrong kernel misses by O(1).
const CHECK_ATOL: f64 = 1e-3;
const CHECK_RTOL: f64 = 2e-3;

/// Runs the forced Coop variant on `CHECKS` and compares with `matmul::reference`.
pub fn self_check(gpu: &Arc<Gpu>) -> Result<()> {
    for (i, &(t, k, n, epilogue, bias)) in CHECKS.iter().enumerate() {
        let w_rows = match epilogue {
            Epilogue::GeGlu(_) => 2 * n,
            _ => n,
        };
        let seed = 17 + 4 * i as u64;
        let x = f16_values(t * k, seed, 1.0);
        let w = f16_values(w_rows * k, seed + 1, 0.5);
        let bv = f16_values(w_rows, seed + 2, 1.0);
        let es = DType::F16.size();
        let mut b = PlanBuilder::new(gpu.clone());
        let xt = b.input("coop check x", (t * k) as u64 * es);
        let wbuf = gpu.upload("coop check w", &DType::F16.encode(&w))?;
        let bbuf = gpu.upload("coop check bias", &DType::F16.encode(&bv))?;
        let wt = b.external("coop check w", &wbuf);
        let bt = b.external("coop check bias", &bbuf);
        let yt = b.output("coop check y", (t * n) as u64 * es);
        let args = MatmulArgs {
            x: xt,
            w: wt,
            bias: bias.then_some(bt),
            residual: None,
            y: yt,
            rows: Rows::Fixed(t as u32),
            k: k as u32,
            n: n as u32,
            dtype: DType::F16,
            epilogue,
            variant: Some(MatmulVariant::Coop),
        };
        matmul::record(&mut b, "coop self-check", &args)?;
        let mut plan = b.build()?;
        plan.write(xt, &DType::F16.encode(&x))?;
        plan.run(&RunSizes::default())?;
        let got = DType::F16.decode(&plan.read(yt, 0, (t * n) as u64 * es)?);
        let want = matmul::reference(&x, &w, bias.then_some(&bv[..]), None, t, k, n, epilogue);
        if let Some((j, g, r)) = got
            .iter()
            .zip(&want)
            .enumerate()
            .map(|(j, (&g, &r))| (j, g, r))
            .find(|&(_, g, r)| {
                !g.is_finite() || (g as f64 - r).abs() > CHECK_ATOL + CHECK_RTOL * r.abs()
            })
        {
            return Err(Error::Unsupported(format!(
                "self-check T={t} K={k} N={n} {epilogue:?}: y[{}, {}] = {g}, reference {r}",
                j / n,
                j % n
            )));
        }
    }
    Ok(())
}

/// Deterministic values in [-scale, scale], rounded to f16.
fn f16_values(len: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let v: Vec<f32> = (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect();
    DType::F16.decode(&DType::F16.encode(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_every_output() {
        assert_eq!(tiles(Epilogue::None, 129, 65), (2, 2));
        assert_eq!(tiles(Epilogue::GeGlu(Activation::Relu), 128, 33), (1, 2));
        assert_eq!(tiles(Epilogue::None, 0, 8).0, 0);
    }

    #[test]
    fn workgroup_memory_fits_48_kib() {
        const { assert!(WORKGROUP_BYTES <= 48 * 1024) };
        assert_eq!(WORKGROUP_BYTES, 47104);
    }

    #[test]
    fn variants_are_f16_with_the_usual_bindings() {
        let v = variants();
        assert_eq!(v.len(), 20);
        assert!(v.iter().all(|k| k.shader == "matmul_coop"));
        let k = kernel(Epilogue::Residual, true);
        assert!(k.name().contains("ELEM=f16") && k.name().contains("RESIDUAL=5"));
        assert!(
            emulated_kernel(Epilogue::None, false)
                .name()
                .contains("EMULATE=1")
        );
    }
}
