//! Attention and RoPE kernels on ModernBERT-base shapes (12 heads, head_dim 64).
//!
//! Attention throughput is `Throughput::Elements(flops)` with flops = 4 * head_dim * heads *
//! (allowed (query, key) pairs): criterion's "Melem/s" divided by 1000 is GFLOP/s. Banded runs
//! count only the pairs inside the band. RoPE throughput is bytes read + written (q and k
//! blocks), i.e. GB/s.
//!
//! Default shapes: global 512 x 64 sequences, global 8192 x 4, window 64 (local_attention 128)
//! on 8192 x 4, RoPE on 32768 tokens. `WGBERT_BENCH_SMALL=1` shrinks them for lavapipe.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use wgbert::ops::attention::{self, AttentionArgs};
use wgbert::ops::{DType, Rows, rope};
use wgbert::runtime::{Gpu, GpuOptions, Plan, PlanBuilder, RunSizes};

const HEAD_DIM: u32 = 64;

fn small() -> bool {
    std::env::var("WGBERT_BENCH_SMALL").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn dtypes(gpu: &Gpu) -> Vec<DType> {
    if gpu.caps().f16 {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    }
}

fn values(n: usize) -> Vec<f32> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

struct Workload {
    name: &'static str,
    seqs: u32,
    len: u32,
    window: Option<u32>,
}

fn attention_plan(
    gpu: &std::sync::Arc<Gpu>,
    w: &Workload,
    n_heads: u32,
    dtype: DType,
) -> anyhow::Result<(Plan, RunSizes, u64)> {
    let t = (w.seqs * w.len) as u64;
    let h = (n_heads * HEAD_DIM) as u64;
    let cu: Vec<u32> = (0..=w.seqs).map(|s| s * w.len).collect();
    let mut b = PlanBuilder::new(gpu.clone());
    let qkv = b.input("qkv", t * 3 * h * dtype.size());
    let cu_t = b.input("cu_seqlens", cu.len() as u64 * 4);
    let out = b.output("out", t * h * dtype.size());
    let args = AttentionArgs {
        qkv,
        cu_seqlens: cu_t,
        key_lens: None,
        out,
        n_heads,
        head_dim: HEAD_DIM,
        window: w.window,
        dtype,
        variant: None,
    };
    attention::record(
        &mut b,
        &wgbert::ops::choice::Choices::default(),
        "attention",
        &args,
    )?;
    let plan = b.build()?;
    plan.write(qkv, &dtype.encode(&values((t * 3 * h) as usize)))?;
    plan.write(cu_t, bytemuck::cast_slice(&cu))?;
    let sizes = RunSizes {
        rows: t as u32,
        segments: w.seqs,
        max_segment: w.len,
        selected: 0,
    };
    let flops = 4 * HEAD_DIM as u64 * n_heads as u64 * attention::allowed_pairs(&cu, w.window);
    Ok((plan, sizes, flops))
}

fn bench_attention(c: &mut Criterion) {
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no GPU, skipping attention benches: {e}");
            return;
        }
    };
    let (n_heads, workloads) = if small() {
        (
            2,
            vec![
                Workload {
                    name: "global_128x4",
                    seqs: 4,
                    len: 128,
                    window: None,
                },
                Workload {
                    name: "global_512x1",
                    seqs: 1,
                    len: 512,
                    window: None,
                },
                Workload {
                    name: "local64_2048x1",
                    seqs: 1,
                    len: 2048,
                    window: Some(64),
                },
            ],
        )
    } else {
        (
            12,
            vec![
                Workload {
                    name: "global_512x64",
                    seqs: 64,
                    len: 512,
                    window: None,
                },
                Workload {
                    name: "global_8192x4",
                    seqs: 4,
                    len: 8192,
                    window: None,
                },
                Workload {
                    name: "local64_8192x4",
                    seqs: 4,
                    len: 8192,
                    window: Some(64),
                },
            ],
        )
    };
    let mut group = c.benchmark_group("attention");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for dtype in dtypes(&gpu) {
        for w in &workloads {
            let (mut plan, sizes, flops) = match attention_plan(&gpu, w, n_heads, dtype) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("attention {}: {e}", w.name);
                    continue;
                }
            };
            group.throughput(Throughput::Elements(flops));
            group.bench_function(format!("{}_{}h_{:?}", w.name, n_heads, dtype), |bch| {
                bch.iter(|| {
                    plan.run(&sizes).expect("run");
                    gpu.wait().expect("wait");
                })
            });
        }
    }
    group.finish();
}

fn bench_rope(c: &mut Criterion) {
    let gpu = match Gpu::new(&GpuOptions::default()) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("no GPU, skipping rope benches: {e}");
            return;
        }
    };
    let (n_heads, t) = if small() {
        (12u32, 2048u32)
    } else {
        (12, 32768)
    };
    let h = (n_heads * HEAD_DIM) as u64;
    let mut group = c.benchmark_group("rope");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500));
    for dtype in dtypes(&gpu) {
        let build = || -> anyhow::Result<Plan> {
            let mut b = PlanBuilder::new(gpu.clone());
            let qkv = b.input("qkv", t as u64 * 3 * h * dtype.size());
            let pos = b.input("positions", t as u64 * 4);
            rope::record(
                &mut b,
                "rope",
                qkv,
                pos,
                Rows::Tokens,
                n_heads,
                HEAD_DIM,
                160000.0,
                dtype,
            )?;
            let plan = b.build()?;
            plan.write(qkv, &dtype.encode(&values((t as u64 * 3 * h) as usize)))?;
            let positions: Vec<u32> = (0..t).map(|i| i % 512).collect();
            plan.write(pos, bytemuck::cast_slice(&positions))?;
            Ok(plan)
        };
        let mut plan = match build() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("rope: {e}");
                continue;
            }
        };
        let sizes = RunSizes {
            rows: t,
            segments: 1,
            max_segment: t,
            selected: 0,
        };
        // q and k blocks, read and written.
        group.throughput(Throughput::Bytes(t as u64 * 2 * h * dtype.size() * 2));
        group.bench_function(format!("rope_{t}x{n_heads}h_{dtype:?}"), |bch| {
            bch.iter(|| {
                plan.run(&sizes).expect("run");
                gpu.wait().expect("wait");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_attention, bench_rope);
criterion_main!(benches);
