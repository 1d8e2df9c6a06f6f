//! Row kernels on ModernBERT-base shapes (hidden 768, vocab 50368): LayerNorm, fused
//! residual add + LayerNorm, embedding gather + LayerNorm, pooling, row gather and the
//! softmax top-k of the MLM head.
//!
//! Throughput is `Throughput::Bytes` of the data each kernel must move once (criterion's
//! GiB/s): LN reads x and writes y (2 T H); the fused form reads x, r and writes h, y (4 T H);
//! embedding reads ids and T table rows and writes y; pooling reads the states; gather reads
//! and writes the selected rows; top-k reads the logits once (its extra histogram passes
//! hit the cache and are not counted). Weights ([H] vectors) are not counted.
//!
//! Default shapes: T = 32768 tokens (64 x 512 sequences for pooling), top-k on 64 x 50368.
//! `WGBERT_BENCH_SMALL=1` shrinks them for lavapipe.

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use wgbert::ops::embedding::{self, EmbeddingArgs};
use wgbert::ops::layernorm::{self, LayerNormArgs, Reduce};
use wgbert::ops::pooling::{self, PoolArgs, PoolMode};
use wgbert::ops::{DType, Rows, gather, topk};
use wgbert::runtime::{Gpu, GpuOptions, Plan, PlanBuilder, RunSizes};

const HIDDEN: u32 = 768;
const VOCAB: u32 = 50368;

fn small() -> bool {
    std::env::var("WGBERT_BENCH_SMALL").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn tokens() -> u32 {
    if small() { 512 } else { 32768 }
}

fn dtypes(gpu: &Gpu) -> Vec<DType> {
    if gpu.caps().f16 {
        vec![DType::F32, DType::F16]
    } else {
        vec![DType::F32]
    }
}

fn reductions(gpu: &Gpu) -> Vec<Reduce> {
    if gpu.caps().subgroups {
        vec![Reduce::Workgroup, Reduce::Subgroup]
    } else {
        vec![Reduce::Workgroup]
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

fn gpu_or_skip(what: &str) -> Option<std::sync::Arc<Gpu>> {
    match Gpu::new(&GpuOptions::default()) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("no GPU, skipping {what} benches: {e}");
            None
        }
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    g
}

/// Times `plan.run(sizes)` + wait, reporting `bytes` per iteration.
fn bench_plan(
    g: &mut BenchmarkGroup<'_, WallTime>,
    gpu: &Gpu,
    name: String,
    bytes: u64,
    built: anyhow::Result<(Plan, RunSizes)>,
) {
    let (mut plan, sizes) = match built {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{name}: {e}");
            return;
        }
    };
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function(name, |b| {
        b.iter(|| {
            plan.run(&sizes).expect("run");
            gpu.wait().expect("wait");
        })
    });
}

fn rows(t: u32) -> RunSizes {
    RunSizes {
        rows: t,
        segments: 1,
        max_segment: t,
        selected: t,
    }
}

fn layernorm_plan(
    gpu: &std::sync::Arc<Gpu>,
    t: u32,
    fused: bool,
    dtype: DType,
    reduce: Reduce,
) -> anyhow::Result<(Plan, RunSizes)> {
    let n = t as u64 * HIDDEN as u64 * dtype.size();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", n);
    let r = b.input("r", n);
    let w = b.input("w", HIDDEN as u64 * dtype.size());
    let h = b.output("h", n);
    let y = b.output("y", n);
    let args = LayerNormArgs {
        x,
        residual: fused.then_some(r),
        sum_out: fused.then_some(h),
        weight: w,
        bias: None,
        y,
        rows: Rows::Tokens,
        hidden: HIDDEN,
        eps: 1e-5,
        dtype,
    };
    layernorm::record_with(&mut b, "ln", &args, reduce)?;
    let plan = b.build()?;
    let data = dtype.encode(&values((t * HIDDEN) as usize));
    plan.write(x, &data)?;
    plan.write(r, &data)?;
    plan.write(w, &dtype.encode(&vec![1.0; HIDDEN as usize]))?;
    Ok((plan, rows(t)))
}

fn bench_layernorm(c: &mut Criterion) {
    let Some(gpu) = gpu_or_skip("layernorm") else {
        return;
    };
    let t = tokens();
    let mut g = group(c, "layernorm");
    for dtype in dtypes(&gpu) {
        for reduce in reductions(&gpu) {
            for fused in [false, true] {
                let name = format!(
                    "{}_{t}x{HIDDEN}_{dtype:?}_{reduce:?}",
                    if fused { "add_ln" } else { "ln" }
                );
                let bytes = t as u64 * HIDDEN as u64 * dtype.size() * if fused { 4 } else { 2 };
                bench_plan(
                    &mut g,
                    &gpu,
                    name,
                    bytes,
                    layernorm_plan(&gpu, t, fused, dtype, reduce),
                );
            }
        }
    }
    g.finish();
}

fn embedding_plan(
    gpu: &std::sync::Arc<Gpu>,
    t: u32,
    vocab: u32,
    dtype: DType,
) -> anyhow::Result<(Plan, RunSizes)> {
    let mut b = PlanBuilder::new(gpu.clone());
    let ids = b.input("ids", t as u64 * 4);
    let table = b.input("table", vocab as u64 * HIDDEN as u64 * dtype.size());
    let w = b.input("w", HIDDEN as u64 * dtype.size());
    let y = b.output("y", t as u64 * HIDDEN as u64 * dtype.size());
    let args = EmbeddingArgs {
        ids,
        table,
        weight: w,
        bias: None,
        y,
        rows: Rows::Tokens,
        hidden: HIDDEN,
        vocab,
        eps: 1e-5,
        dtype,
    };
    embedding::record(&mut b, "embedding", &args)?;
    let plan = b.build()?;
    let id_values: Vec<u32> = (0..t)
        .map(|i| (i.wrapping_mul(2_654_435_761)) % vocab)
        .collect();
    plan.write(ids, bytemuck::cast_slice(&id_values))?;
    plan.write(table, &dtype.encode(&values((vocab * HIDDEN) as usize)))?;
    plan.write(w, &dtype.encode(&vec![1.0; HIDDEN as usize]))?;
    Ok((plan, rows(t)))
}

fn bench_embedding(c: &mut Criterion) {
    let Some(gpu) = gpu_or_skip("embedding") else {
        return;
    };
    let t = tokens();
    let vocab = if small() { 4096 } else { VOCAB };
    let mut g = group(c, "embedding");
    for dtype in dtypes(&gpu) {
        let bytes = t as u64 * (4 + 2 * HIDDEN as u64 * dtype.size());
        let name = format!("embed_ln_{t}x{HIDDEN}_v{vocab}_{dtype:?}");
        bench_plan(
            &mut g,
            &gpu,
            name,
            bytes,
            embedding_plan(&gpu, t, vocab, dtype),
        );
    }
    g.finish();
}

fn pooling_plan(
    gpu: &std::sync::Arc<Gpu>,
    seqs: u32,
    len: u32,
    dtype: DType,
) -> anyhow::Result<(Plan, RunSizes)> {
    let t = seqs * len;
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", t as u64 * HIDDEN as u64 * dtype.size());
    let cu = b.input("cu_seqlens", (seqs as u64 + 1) * 4);
    let out = b.output("pooled", seqs as u64 * HIDDEN as u64 * 4);
    let args = PoolArgs {
        x,
        cu_seqlens: cu,
        out,
        hidden: HIDDEN,
        mode: PoolMode::Mean,
        normalize: true,
        dtype,
    };
    pooling::record(&mut b, "pool", &args)?;
    let plan = b.build()?;
    plan.write(x, &dtype.encode(&values((t * HIDDEN) as usize)))?;
    let offsets: Vec<u32> = (0..=seqs).map(|s| s * len).collect();
    plan.write(cu, bytemuck::cast_slice(&offsets))?;
    let sizes = RunSizes {
        rows: t,
        segments: seqs,
        max_segment: len,
        selected: 0,
    };
    Ok((plan, sizes))
}

fn gather_plan(
    gpu: &std::sync::Arc<Gpu>,
    t: u32,
    n: u32,
    dtype: DType,
) -> anyhow::Result<(Plan, RunSizes)> {
    let row = HIDDEN as u64 * dtype.size();
    let mut b = PlanBuilder::new(gpu.clone());
    let x = b.input("x", t as u64 * row);
    let index = b.input("index", n as u64 * 4);
    let y = b.output("y", n as u64 * row);
    gather::record(&mut b, "gather", x, index, y, Rows::Selected, HIDDEN, dtype)?;
    let plan = b.build()?;
    let idx: Vec<u32> = (0..n).map(|i| (i * 7) % t).collect();
    plan.write(index, bytemuck::cast_slice(&idx))?;
    Ok((plan, rows(n)))
}

fn bench_heads(c: &mut Criterion) {
    let Some(gpu) = gpu_or_skip("pooling/gather/top-k") else {
        return;
    };
    let (seqs, len) = if small() { (8, 64) } else { (64, 512) };
    let mut g = group(c, "heads");
    for dtype in dtypes(&gpu) {
        let bytes = (seqs * len) as u64 * HIDDEN as u64 * dtype.size();
        let name = format!("mean_pool_l2_{seqs}x{len}x{HIDDEN}_{dtype:?}");
        bench_plan(
            &mut g,
            &gpu,
            name,
            bytes,
            pooling_plan(&gpu, seqs, len, dtype),
        );
        let (t, n) = (seqs * len, seqs * len / 8);
        let bytes = n as u64 * (4 + 2 * HIDDEN as u64 * dtype.size());
        let name = format!("gather_{n}_of_{t}x{HIDDEN}_{dtype:?}");
        bench_plan(&mut g, &gpu, name, bytes, gather_plan(&gpu, t, n, dtype));
    }
    let r = if small() { 4 } else { 64 };
    for k in [10, 64] {
        let built = (|| -> anyhow::Result<(Plan, RunSizes)> {
            let mut b = PlanBuilder::new(gpu.clone());
            let logits = b.input("logits", r as u64 * VOCAB as u64 * 4);
            let out = b.output("top", topk::out_bytes(r, k));
            topk::record(&mut b, "topk", logits, out, Rows::Selected, VOCAB, k)?;
            let plan = b.build()?;
            let l: Vec<f32> = values((r * VOCAB) as usize)
                .iter()
                .map(|v| v * 10.0)
                .collect();
            plan.write(logits, bytemuck::cast_slice(&l))?;
            Ok((plan, rows(r)))
        })();
        let name = format!("topk{k}_softmax_{r}x{VOCAB}");
        bench_plan(&mut g, &gpu, name, r as u64 * VOCAB as u64 * 4, built);
    }
    g.finish();
}

criterion_group!(benches, bench_layernorm, bench_embedding, bench_heads);
criterion_main!(benches);
