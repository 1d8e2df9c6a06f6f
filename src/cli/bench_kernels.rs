//! `wgbert bench --kernels`: matmul and attention sweeps on ModernBERT-base shapes (and a
//! 4096^3 square matmul), timed on the GPU with timestamp queries where available (wall time
//! otherwise), reported in TFLOP/s. `--sweep` also times every candidate tile configuration
//! of the tiled matmul (`ops::tune`) on each matmul shape, the tensor-core matmul where the
//! adapter has it, and every candidate tile of the portable attention kernel.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use wgbert::ops::attention::{self, AttentionArgs};
use wgbert::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant, tiled};
use wgbert::ops::{DType, Rows};
use wgbert::runtime::{Gpu, Plan, RunSizes};

const REPS: usize = 5;

fn time_plan(gpu: &Gpu, plan: &mut Plan, sizes: &RunSizes) -> Result<f64> {
    plan.run(sizes)?;
    gpu.wait()?;
    if gpu.caps().timestamps {
        let mut ns = 0.0;
        for _ in 0..REPS {
            ns += plan.run_profiled(sizes)?.total_ns();
        }
        return Ok(ns / REPS as f64 * 1e-9);
    }
    let t = Instant::now();
    for _ in 0..REPS {
        plan.run(sizes)?;
    }
    gpu.wait()?;
    Ok(t.elapsed().as_secs_f64() / REPS as f64)
}

/// How a matmul case picks its kernel.
#[derive(Clone, Copy)]
enum Pick {
    /// As the model would (`matmul::record`).
    Auto,
    /// The tiled kernel at this configuration.
    Tiled(tiled::Config),
    /// The tensor-core kernel.
    Coop,
}

fn matmul_case(
    gpu: &Arc<Gpu>,
    dt: DType,
    (t, k, n): (u32, u32, u32),
    epilogue: Epilogue,
    pick: Pick,
) -> Result<f64> {
    let e = dt.size();
    let mut b = wgbert::runtime::PlanBuilder::new(gpu.clone());
    let out_n = match epilogue {
        Epilogue::GeGlu(_) => n / 2,
        _ => n,
    };
    let w = gpu.upload("w", &dt.encode(&vec![0.01; (k * n) as usize]))?;
    let x = b.input("x", t as u64 * k as u64 * e);
    let w = b.external("w", &w);
    let r = b.input("r", t as u64 * out_n as u64 * e);
    let y = b.output("y", t as u64 * out_n as u64 * e);
    let residual = matches!(epilogue, Epilogue::Residual).then_some(r);
    let args = MatmulArgs {
        x,
        w,
        bias: None,
        residual,
        y,
        rows: Rows::Fixed(t),
        k,
        n: out_n,
        dtype: dt,
        epilogue,
        variant: None,
    };
    match pick {
        Pick::Auto => matmul::record(&mut b, "matmul", &args)?,
        Pick::Tiled(c) => {
            let kernel = tiled::kernel(dt, epilogue, false, c);
            matmul::record_kernel(&mut b, "matmul", &args, kernel, tiled::tile(c, epilogue))?
        }
        Pick::Coop => {
            let args = MatmulArgs {
                variant: Some(MatmulVariant::Coop),
                ..args
            };
            matmul::record(&mut b, "matmul", &args)?
        }
    }
    let mut plan = b.build()?;
    plan.write(x, &dt.encode(&vec![0.5; (t * k) as usize]))?;
    let secs = time_plan(
        gpu,
        &mut plan,
        &RunSizes {
            rows: t,
            ..Default::default()
        },
    )?;
    Ok(2.0 * t as f64 * k as f64 * n as f64 / secs / 1e12)
}

/// Attention over `seqs` sequences of `len` tokens (12 heads of 64), with the automatic
/// choice of kernel, or the portable kernel at `tiles`.
fn attention_case(
    gpu: &Arc<Gpu>,
    dt: DType,
    (seqs, len): (u32, u32),
    window: Option<u32>,
    tiles: Option<attention::Tiles>,
) -> Result<f64> {
    let (heads, d) = (12u32, 64u32);
    let t = seqs * len;
    let e = dt.size();
    let mut b = wgbert::runtime::PlanBuilder::new(gpu.clone());
    let qkv = b.input("qkv", t as u64 * 3 * heads as u64 * d as u64 * e);
    let cu = b.input("cu_seqlens", (seqs as u64 + 1) * 4);
    let out = b.output("out", t as u64 * heads as u64 * d as u64 * e);
    let args = AttentionArgs {
        qkv,
        cu_seqlens: cu,
        key_lens: None,
        out,
        n_heads: heads,
        head_dim: d,
        window,
        dtype: dt,
        variant: None,
    };
    match tiles {
        Some(tiles) => {
            let kernel = attention::kernel(dt, d, tiles);
            attention::record_kernel(&mut b, "attention", &args, Some(kernel))?
        }
        None => attention::record(&mut b, "attention", &args)?,
    }
    let mut plan = b.build()?;
    let cu_v: Vec<u32> = (0..=seqs).map(|i| i * len).collect();
    plan.write(cu, bytemuck::cast_slice(&cu_v))?;
    plan.write(qkv, &dt.encode(&vec![0.1; (t * 3 * heads * d) as usize]))?;
    let sizes = RunSizes {
        rows: t,
        segments: seqs,
        max_segment: len,
        selected: 0,
    };
    let secs = time_plan(gpu, &mut plan, &sizes)?;
    let pairs = attention::allowed_pairs(&cu_v, window) as f64;
    Ok(4.0 * pairs * d as f64 * heads as f64 / secs / 1e12)
}

pub fn run(gpu: &Arc<Gpu>, dtype: Option<DType>, json_out: bool, sweep: bool) -> Result<()> {
    let dt = dtype.unwrap_or(if gpu.caps().f16 {
        DType::F16
    } else {
        DType::F32
    });
    // What a model load would do first: the tensor-core self-checks (f16) and the tiled
    // matmul's tuning, so that the automatic choice below is the model's.
    if dt == DType::F16 {
        wgbert::ops::f16_kernels(gpu)?;
    }
    let cache = wgbert::ops::tune::Cache::default_location();
    wgbert::ops::tune::ensure_tiled(gpu, dt, &cache, wgbert::ops::tune::Mode::Ensure, None)?;
    let d = [super::tune::MODERNBERT_HEAD_DIM];
    wgbert::ops::tune::ensure_attention(
        gpu,
        dt,
        &d,
        &cache,
        wgbert::ops::tune::Mode::Ensure,
        None,
    )?;
    let small = std::env::var("WGBERT_BENCH_SMALL").is_ok_and(|v| v == "1");
    let t = if small { 256 } else { 32768 };
    let act = wgbert::ops::Activation::GeluErf;
    let mut cases: Vec<(String, f64)> = Vec::new();
    let matmuls = [
        ("Wqkv 768->2304", t, 768, 2304, Epilogue::None),
        ("attn.Wo 768->768 +res", t, 768, 768, Epilogue::Residual),
        ("Wi 768->2304 geglu", t, 768, 2304, Epilogue::GeGlu(act)),
        ("mlp.Wo 1152->768 +res", t, 1152, 768, Epilogue::Residual),
    ];
    let sq = if small { 256 } else { 4096 };
    let mut shapes: Vec<(String, (u32, u32, u32), Epilogue)> = matmuls
        .iter()
        .map(|&(name, t, k, n, ep)| (format!("matmul {name} T={t}"), (t, k, n), ep))
        .collect();
    shapes.push((format!("matmul {sq}^3"), (sq, sq, sq), Epilogue::None));
    for (name, shape, ep) in &shapes {
        cases.push((name.clone(), matmul_case(gpu, dt, *shape, *ep, Pick::Auto)?));
    }
    if sweep {
        // Every candidate of the tiled kernel, and the tensor-core kernel where it runs.
        let mut picks: Vec<(String, Pick)> = tiled::fitting(gpu.caps())
            .into_iter()
            .map(|c| (format!("tiled {}", c.name()), Pick::Tiled(c)))
            .collect();
        if dt == DType::F16 && matmul::coop_status(gpu, dt).is_ok() {
            picks.push(("coop".into(), Pick::Coop));
        }
        for (name, shape, ep) in &shapes {
            for (pick_name, pick) in &picks {
                let tf = matmul_case(gpu, dt, *shape, *ep, *pick)?;
                cases.push((format!("{name} [{pick_name}]"), tf));
            }
        }
    }
    let (s512, s8k) = if small { (4, 1) } else { (64, 4) };
    let long = if small { 1024 } else { 8192 };
    let attentions = [
        (format!("attention global 512 x {s512}"), (s512, 512), None),
        (
            format!("attention global {long} x {s8k}"),
            (s8k, long),
            None,
        ),
        (
            format!("attention window 64, {long} x {s8k}"),
            (s8k, long),
            Some(64),
        ),
    ];
    for (name, shape, window) in &attentions {
        cases.push((
            name.clone(),
            attention_case(gpu, dt, *shape, *window, None)?,
        ));
    }
    if sweep {
        // Every candidate tile of the portable kernel at ModernBERT's head size.
        for tiles in attention::fitting(64, gpu.caps()) {
            for (name, shape, window) in &attentions {
                let tf = attention_case(gpu, dt, *shape, *window, Some(tiles))?;
                cases.push((format!("{name} [portable {}]", tiles.name()), tf));
            }
        }
    }
    if json_out {
        let m: serde_json::Map<String, serde_json::Value> =
            cases.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        println!(
            "{}",
            json!({ "adapter": gpu.info().name, "dtype": format!("{dt:?}"), "tflops": m })
        );
    } else {
        println!(
            "adapter {} ({:?}), {dt:?}; TFLOP/s (GPU timestamps: {})",
            gpu.info().name,
            gpu.info().backend,
            gpu.caps().timestamps
        );
        for (name, tf) in cases {
            // Software adapters run at GFLOP/s: three decimals of TFLOP/s would read 0.000.
            if tf >= 0.1 {
                println!("  {name:<58} {tf:>9.3}");
            } else {
                println!("  {name:<58} {:>9.3} GFLOP/s", tf * 1e3);
            }
        }
    }
    Ok(())
}
