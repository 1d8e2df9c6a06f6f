//! Timed plans on representative shapes, shared by the autotuner (`ops::tune`) and
//! `wgbert bench --kernels`: one op over inputs that hold constants (the work does not depend
//! on the values), and [`seconds`] to measure a plan. The plans' buffers are listed without a
//! device ([`matmul_buffers`], [`attention_buffers`]) so that a benchmark can shrink a shape
//! to the adapter's limits before it allocates ([`fit_matmul_rows`], [`fit_attention_seqs`]).

use crate::time::Instant;
use std::sync::Arc;

use crate::Result;
use crate::ops::attention::{self, AttentionArgs};
use crate::ops::choice::Choices;
use crate::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant};
use crate::ops::{DType, Rows};
use crate::runtime::{Capabilities, Gpu, Kernel, Plan, PlanBuilder, RunSizes};

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

/// The buffers of `matmul_plan`'s plan, (name, bytes), without the parameters.
pub fn matmul_buffers(
    dtype: DType,
    (t, k, n): (u32, u32, u32),
    epilogue: Epilogue,
) -> Vec<(&'static str, u64)> {
    let (t, k, n, es) = (t as u64, k as u64, n as u64, dtype.size());
    let out_n = match epilogue {
        Epilogue::GeGlu(_) => n / 2,
        _ => n,
    };
    let mut out = vec![("timed w", k * n * es), ("timed x", t * k * es)];
    if epilogue == Epilogue::Residual {
        out.push(("timed residual", t * out_n * es));
    }
    out.push(("timed y", t * out_n * es));
    out
}

/// The buffers of `attention_plan`'s plan, (name, bytes), without the parameters.
pub fn attention_buffers(
    dtype: DType,
    (seqs, len): (u32, u32),
    (heads, head_dim): (u32, u32),
) -> Vec<(&'static str, u64)> {
    let t = seqs as u64 * len as u64;
    let h = heads as u64 * head_dim as u64;
    let es = dtype.size();
    vec![
        ("timed qkv", t * 3 * h * es),
        ("timed cu_seqlens", (seqs as u64 + 1) * 4),
        ("timed out", t * h * es),
    ]
}

/// Checks every buffer against the limits of `caps` (as `Gpu::storage` would, rounded to 4
/// bytes); the error names the first that does not fit.
pub fn check_buffers(caps: &Capabilities, buffers: &[(&str, u64)]) -> Result<()> {
    for &(name, bytes) in buffers {
        caps.check_binding(name, bytes.max(4).next_multiple_of(4))?;
    }
    Ok(())
}

/// The most rows, `t` halved as often as needed, whose timed matmul fits a device of `caps`;
/// `None` when not even one row does (the weight alone is too large).
pub fn fit_matmul_rows(
    caps: &Capabilities,
    dtype: DType,
    (t, k, n): (u32, u32, u32),
    epilogue: Epilogue,
) -> Option<u32> {
    let mut rows = t;
    while rows >= 1 {
        if check_buffers(caps, &matmul_buffers(dtype, (rows, k, n), epilogue)).is_ok() {
            return Some(rows);
        }
        rows /= 2;
    }
    None
}

/// The most sequences of `len` tokens, `seqs` halved as often as needed, whose timed
/// attention fits a device of `caps`; `None` when not even one does.
pub fn fit_attention_seqs(
    caps: &Capabilities,
    dtype: DType,
    (seqs, len): (u32, u32),
    heads: (u32, u32),
) -> Option<u32> {
    let mut n = seqs;
    while n >= 1 {
        if check_buffers(caps, &attention_buffers(dtype, (n, len), heads)).is_ok() {
            return Some(n);
        }
        n /= 2;
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A device with WebGPU's default 128 MiB binding limit and a larger buffer limit.
    fn caps(binding: u64, buffer: u64) -> Capabilities {
        Capabilities {
            max_storage_binding: binding,
            max_buffer_size: buffer,
            ..Default::default()
        }
    }

    #[test]
    fn shapes_shrink_to_the_limits_or_are_refused() {
        let webgpu = caps(128 << 20, 256 << 20);
        // 32768 x 2304 f16 outputs are 144 MiB: half the rows fit.
        let qkv = (32768, 768, 2304);
        assert_eq!(
            fit_matmul_rows(&webgpu, DType::F16, qkv, Epilogue::None),
            Some(16384)
        );
        let e = check_buffers(&webgpu, &matmul_buffers(DType::F16, qkv, Epilogue::None));
        assert!(e.is_err_and(|e| e.to_string().contains("timed y")));
        // GeGLU halves the output: the whole shape fits.
        let gelu = Epilogue::GeGlu(crate::ops::Activation::GeluErf);
        assert_eq!(fit_matmul_rows(&webgpu, DType::F16, qkv, gelu), Some(32768));
        // The buffer limit counts too, and a weight over it cannot shrink.
        let tiny = caps(1 << 30, 1 << 20);
        assert_eq!(
            fit_matmul_rows(&tiny, DType::F32, (64, 1024, 1024), Epilogue::None),
            None
        );
        assert_eq!(
            fit_matmul_rows(&tiny, DType::F32, (4096, 256, 256), Epilogue::Residual),
            Some(1024)
        );
        // Attention: 64 sequences of 512 need 144 MiB of f16 qkv, 32 fit; one sequence of
        // 2^20 tokens never does.
        let heads = (12, 64);
        assert_eq!(
            fit_attention_seqs(&webgpu, DType::F16, (64, 512), heads),
            Some(32)
        );
        assert_eq!(
            fit_attention_seqs(&webgpu, DType::F16, (4, 8192), heads),
            Some(2)
        );
        assert_eq!(
            fit_attention_seqs(&webgpu, DType::F16, (1, 1 << 20), heads),
            None
        );
    }
}
