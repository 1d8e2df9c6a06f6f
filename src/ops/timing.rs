//! Timed plans on representative shapes, shared by the autotuner (`ops::tune`) and
//! `wgbert bench --kernels`: one op over inputs that hold constants (the work does not depend
//! on the values), and [`seconds`] to measure a plan.

use std::sync::Arc;
use std::time::Instant;

use crate::Result;
use crate::ops::attention::{self, AttentionArgs};
use crate::ops::choice::Choices;
use crate::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant};
use crate::ops::{DType, Rows};
use crate::runtime::{Gpu, Kernel, Plan, PlanBuilder, RunSizes};

/// Mean seconds per run of `plan` over `reps` runs after one warm-up run: GPU time from
/// timestamp queries where the adapter has them, wall time around the runs otherwise.
pub fn seconds(gpu: &Gpu, plan: &mut Plan, sizes: &RunSizes, reps: usize) -> Result<f64> {
    plan.run(sizes)?;
    gpu.wait()?;
    if gpu.caps().timestamps {
        let mut ns = 0.0;
        for _ in 0..reps {
            ns += plan.run_profiled(sizes)?.total_ns();
        }
        return Ok(ns / reps as f64 * 1e-9);
    }
    let t = Instant::now();
    for _ in 0..reps {
        plan.run(sizes)?;
    }
    gpu.wait()?;
    Ok(t.elapsed().as_secs_f64() / reps as f64)
}

/// One matmul of `t` rows, `k` inputs and `n` weight rows (`n / 2` outputs for GeGLU) with
/// `epilogue`, no bias: recorded with `kernel` and its workgroup tile when given, else as
/// `variant` and `choices` choose (`None`: the automatic choice). Returns the plan and its
/// run sizes.
pub fn matmul_plan(
    gpu: &Arc<Gpu>,
    choices: &Choices,
    dtype: DType,
    (t, k, n): (u32, u32, u32),
    epilogue: Epilogue,
    variant: Option<MatmulVariant>,
    kernel: Option<(Kernel, (u32, u32))>,
) -> Result<(Plan, RunSizes)> {
    let es = dtype.size();
    let out_n = match epilogue {
        Epilogue::GeGlu(_) => n / 2,
        _ => n,
    };
    let mut b = PlanBuilder::new(gpu.clone());
    let wbuf = gpu.upload("timed w", &dtype.encode(&vec![0.01; (k * n) as usize]))?;
    let x = b.input("timed x", t as u64 * k as u64 * es);
    let residual = (epilogue == Epilogue::Residual)
        .then(|| b.input("timed residual", t as u64 * out_n as u64 * es));
    let args = MatmulArgs {
        x,
        w: b.external("timed w", &wbuf),
        bias: None,
        residual,
        y: b.output("timed y", t as u64 * out_n as u64 * es),
        rows: Rows::Fixed(t),
        k,
        n: out_n,
        dtype,
        epilogue,
        variant,
    };
    match kernel {
        Some((kernel, tile)) => matmul::record_kernel(&mut b, "timed", &args, kernel, tile)?,
        None => matmul::record(&mut b, choices, "timed", &args)?,
    }
    let plan = b.build()?;
    plan.write(x, &dtype.encode(&vec![0.5; (t * k) as usize]))?;
    let sizes = RunSizes {
        rows: t,
        ..Default::default()
    };
    Ok((plan, sizes))
}

/// Attention over `seqs` sequences of `len` tokens, `heads` heads of `head_dim`, globally or
/// within `window`: recorded with `kernel` when given, else with the automatic choice under
/// `choices`. Returns the plan and its run sizes.
pub fn attention_plan(
    gpu: &Arc<Gpu>,
    choices: &Choices,
    dtype: DType,
    (seqs, len): (u32, u32),
    (heads, head_dim): (u32, u32),
    window: Option<u32>,
    kernel: Option<Kernel>,
) -> Result<(Plan, RunSizes)> {
    let t = (seqs * len) as u64;
    let h = (heads * head_dim) as u64;
    let es = dtype.size();
    let mut b = PlanBuilder::new(gpu.clone());
    let args = AttentionArgs {
        qkv: b.input("timed qkv", t * 3 * h * es),
        cu_seqlens: b.input("timed cu_seqlens", (seqs as u64 + 1) * 4),
        key_lens: None,
        out: b.output("timed out", t * h * es),
        n_heads: heads,
        head_dim,
        window,
        dtype,
        variant: None,
    };
    match kernel {
        Some(kernel) => attention::record_kernel(&mut b, "timed", &args, Some(kernel))?,
        None => attention::record(&mut b, choices, "timed", &args)?,
    }
    let plan = b.build()?;
    let cu: Vec<u32> = (0..=seqs).map(|i| i * len).collect();
    plan.write(args.cu_seqlens, bytemuck::cast_slice(&cu))?;
    plan.write(args.qkv, &dtype.encode(&vec![0.1; (t * 3 * h) as usize]))?;
    let sizes = RunSizes {
        rows: t as u32,
        segments: seqs,
        max_segment: len,
        selected: 0,
    };
    Ok((plan, sizes))
}
