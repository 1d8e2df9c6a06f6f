//! Matmul throughput at ModernBERT-base shapes, T = 32768 tokens: QKV 768->2304, attention
//! Wo 768->768 + residual, Wi 768->2x1152 with the GeGLU epilogue (1152 outputs), MLP Wo
//! 1152->768 + residual; and the MLM decoder on 16 selected rows (768->50368 + bias), tiled
//! vs subgroup. f32, and f16 where the adapter has it.
//!
//! Throughput is criterion "elements" = floating-point operations (2 per multiply-add, both
//! GeGLU halves counted), so "Gelem/s" reads GFLOP/s. Each iteration runs the plan and waits.
//! `WGBERT_BENCH_SMALL=1` shrinks T to 256 and the decoder to 8192 outputs (lavapipe).

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wgbert::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant};
use wgbert::ops::{Activation, DType, Rows};
use wgbert::runtime::{Gpu, GpuOptions, Plan, PlanBuilder, RunSizes};

struct Shape {
    name: String,
    t: u32,
    k: u32,
    n: u32,
    epilogue: Epilogue,
    bias: bool,
    variant: Option<MatmulVariant>,
}

fn small() -> bool {
    std::env::var("WGBERT_BENCH_SMALL").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn shapes() -> Vec<Shape> {
    let t = if small() { 256 } else { 32768 };
    let v = if small() { 8192 } else { 50368 };
    let (none, res) = (Epilogue::None, Epilogue::Residual);
    let geglu = Epilogue::GeGlu(Activation::GeluErf);
    let (tiled, sg) = (Some(MatmulVariant::Tiled), Some(MatmulVariant::Subgroup));
    let table = [
        ("qkv_768x2304", t, 768, 2304, none, false, None),
        ("wo_768x768_residual", t, 768, 768, res, false, None),
        ("wi_768x2x1152_geglu", t, 768, 1152, geglu, false, None),
        ("mlp_wo_1152x768_residual", t, 1152, 768, res, false, None),
        ("decoder_16x768xV_tiled", 16, 768, v, none, true, tiled),
        ("decoder_16x768xV_subgroup", 16, 768, v, none, true, sg),
    ];
    table
        .into_iter()
        .map(|(name, t, k, n, epilogue, bias, variant)| Shape {
            name: name.replace('V', &v.to_string()),
            t,
            k,
            n,
            epilogue,
            bias,
            variant,
        })
        .collect()
}

/// A plan holding one matmul over random data.
fn plan(gpu: &Arc<Gpu>, s: &Shape, dtype: DType) -> wgbert::Result<Plan> {
    let (t, k, n) = (s.t as usize, s.k as usize, s.n as usize);
    let w_rows = match s.epilogue {
        Epilogue::GeGlu(_) => 2 * n,
        _ => n,
    };
    let rand = |len: usize, seed: u64, scale: f32| -> Vec<u8> {
        let mut st = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let v: Vec<f32> = (0..len)
            .map(|_| {
                st ^= st << 13;
                st ^= st >> 7;
                st ^= st << 17;
                ((st >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        dtype.encode(&v)
    };
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", (t * k) as u64 * dtype.size());
    let wbuf = gpu.upload("w", &rand(w_rows * k, 2, 0.05))?;
    let w = b.external("w", &wbuf);
    let bbuf = gpu.upload("bias", &rand(w_rows, 3, 0.1))?;
    let bias = s.bias.then(|| b.external("bias", &bbuf));
    let residual = (s.epilogue == Epilogue::Residual)
        .then(|| b.input("residual", (t * n) as u64 * dtype.size()));
    let y = b.output("y", (t * n) as u64 * dtype.size());
    let args = MatmulArgs {
        x,
        w,
        bias,
        residual,
        y,
        rows: Rows::Fixed(s.t),
        k: s.k,
        n: s.n,
        dtype,
        epilogue: s.epilogue,
        variant: s.variant,
    };
    matmul::record(
        &mut b,
        &wgbert::ops::choice::Choices::default(),
        &s.name,
        &args,
    )?;
    let plan = b.build()?;
    plan.write(x, &rand(t * k, 1, 1.0))?;
    if let Some(r) = residual {
        plan.write(r, &rand(t * n, 4, 1.0))?;
    }
    Ok(plan)
}

fn bench(c: &mut Criterion) {
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no GPU, matmul benches skipped: {e}");
            return;
        }
    };
    eprintln!("adapter: {}", gpu.info().name);
    let mut dtypes = vec![DType::F32];
    if gpu.caps().f16 {
        dtypes.push(DType::F16);
    }
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(if small() { 3 } else { 5 }));
    for s in shapes() {
        if s.variant.is_some_and(|v| v.supported(gpu.caps()).is_err()) {
            continue;
        }
        let name = &s.name;
        for &dtype in &dtypes {
            let mut p = match plan(&gpu, &s, dtype) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("{name} {dtype:?} skipped: {e}");
                    continue;
                }
            };
            let flops = matmul::flops(s.t as u64, s.k as u64, s.n as u64, s.epilogue);
            group.throughput(Throughput::Elements(flops));
            let sizes = RunSizes::default();
            group.bench_function(format!("{name}/{}", dtype.wgsl()), |bch| {
                bch.iter(|| {
                    p.run(&sizes)
                        .and_then(|_| p.gpu().wait())
                        .unwrap_or_else(|e| {
                            panic!("{name}: {e}");
                        })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
