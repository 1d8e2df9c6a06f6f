//! One matmul case run on the GPU and checked against `matmul::reference`, shared by the
//! portable (tests/matmul.rs) and tensor-core (tests/matmul_coop.rs) suites.

use wgbert::ops::choice::Choices;
use wgbert::ops::matmul::{self, Epilogue, MatmulArgs, MatmulVariant};
use wgbert::ops::{DType, Rows};
use wgbert::runtime::{Kernel, PlanBuilder, RunSizes};

/// What one case multiplies: `[T, k] x [n (2n for GeGLU), k]^T` with the epilogue.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub k: usize,
    pub n: usize,
    pub dtype: DType,
    /// `None`: the automatic choice.
    pub variant: Option<MatmulVariant>,
    pub epilogue: Epilogue,
    pub bias: bool,
}

/// Records `c` for `cap` rows (through `matmul::record`, or with `kernel` and its workgroup
/// tile when given), runs the plan once per entry of `runs` (row counts <= cap) and checks
/// each output with `|got - want| <= atol + rtol * |want|`. Inputs are rounded to the
/// storage type before the reference sees them. `what` names the case in failures.
#[allow(clippy::too_many_arguments)]
pub fn check(
    what: &str,
    choices: &Choices,
    c: Case,
    cap: usize,
    runs: &[usize],
    seed: u64,
    kernel: Option<(Kernel, (u32, u32))>,
    (atol, rtol): (f64, f64),
) {
    let gpu = super::gpu();
    let w_rows = match c.epilogue {
        Epilogue::GeGlu(_) => 2 * c.n,
        _ => c.n,
    };
    let es = c.dtype.size();
    let data =
        |n: usize, seed: u64, scale: f32| super::stored(c.dtype, &super::rand_vec(n, seed, scale));
    let x = data(cap * c.k, seed, 1.0);
    let w = data(w_rows * c.k, seed + 1, 0.5);
    let bias = data(w_rows, seed + 2, 1.0);
    let res = data(cap * c.n, seed + 3, 2.0);
    let residual = c.epilogue == Epilogue::Residual;

    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("x", (cap * c.k) as u64 * es);
    let wbuf = gpu.upload("w", &c.dtype.encode(&w)).unwrap();
    let bbuf = gpu.upload("bias", &c.dtype.encode(&bias)).unwrap();
    let rt = residual.then(|| b.input("residual", (cap * c.n) as u64 * es));
    let args = MatmulArgs {
        x: xt,
        w: b.external("w", &wbuf),
        bias: c.bias.then(|| b.external("bias", &bbuf)),
        residual: rt,
        y: b.output("y", (cap * c.n) as u64 * es),
        rows: Rows::Tokens,
        k: c.k as u32,
        n: c.n as u32,
        dtype: c.dtype,
        epilogue: c.epilogue,
        variant: c.variant,
    };
    match kernel {
        Some((kernel, tile)) => {
            matmul::record_kernel(&mut b, "matmul", &args, kernel, tile).unwrap()
        }
        None => matmul::record(&mut b, choices, "matmul", &args).unwrap(),
    }
    let mut plan = b.build().unwrap();
    plan.write(xt, &c.dtype.encode(&x)).unwrap();
    if let Some(rt) = rt {
        plan.write(rt, &c.dtype.encode(&res)).unwrap();
    }
    for &t in runs {
        plan.run(&RunSizes {
            rows: t as u32,
            ..Default::default()
        })
        .unwrap();
        let got = c
            .dtype
            .decode(&plan.read(args.y, 0, (t * c.n) as u64 * es).unwrap());
        let want = matmul::reference(
            &x[..t * c.k],
            &w,
            c.bias.then_some(&bias[..]),
            residual.then_some(&res[..t * c.n]),
            t,
            c.k,
            c.n,
            c.epilogue,
        );
        super::assert_close(&format!("{what} T={t}"), &got, &want, atol, rtol);
    }
}

/// One Wqkv projection with RoPE (`matmul::record_rope`, or `record_rope_kernel` with
/// `kernel` and its tile): `[T, k] x [3H, k]^T + bias` over `n_heads` heads of `head_dim`,
/// positions far apart (large angles), recorded for `cap` rows known at run time and run at
/// each row count of `runs`, checked against the matmul reference then the RoPE reference
/// (theta 160000). Returns the plan listing, so that callers can say which steps fused.
#[allow(clippy::too_many_arguments)]
pub fn check_rope(
    choices: &Choices,
    what: &str,
    dtype: DType,
    (n_heads, head_dim): (u32, u32),
    k: usize,
    cap: usize,
    runs: &[usize],
    kernel: Option<(Kernel, (u32, u32))>,
    (atol, rtol): (f64, f64),
) -> String {
    let gpu = super::gpu();
    let n = (3 * n_heads * head_dim) as usize;
    let theta = 160000.0;
    let es = dtype.size();
    let data = |len: usize, seed: u64, scale: f32| {
        super::stored(dtype, &super::rand_vec(len, seed, scale))
    };
    let x = data(cap * k, 41, 1.0);
    let w = data(n * k, 42, 0.5);
    let bias = data(n, 43, 1.0);
    let positions: Vec<u32> = (0..cap as u32).map(|i| (i * 61) % 8000).collect();
    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("x", (cap * k) as u64 * es);
    let pt = b.input("positions", cap as u64 * 4);
    let wbuf = gpu.upload("w", &dtype.encode(&w)).unwrap();
    let bbuf = gpu.upload("bias", &dtype.encode(&bias)).unwrap();
    let args = MatmulArgs {
        x: xt,
        w: b.external("w", &wbuf),
        bias: Some(b.external("bias", &bbuf)),
        residual: None,
        y: b.output("qkv", (cap * n) as u64 * es),
        rows: Rows::Tokens,
        k: k as u32,
        n: n as u32,
        dtype,
        epilogue: Epilogue::None,
        variant: None,
    };
    let rope = matmul::RopeArgs {
        positions: pt,
        n_heads,
        head_dim,
        freq: wgbert::ops::rope::Frequencies::theta(head_dim, theta),
    };
    match kernel {
        Some((kernel, tile)) => {
            matmul::record_rope_kernel(&mut b, "wqkv", &args, &rope, kernel, tile).unwrap()
        }
        None => matmul::record_rope(&mut b, choices, "wqkv", &args, &rope).unwrap(),
    }
    let mut plan = b.build().unwrap();
    let listing = plan.describe();
    plan.write(xt, &dtype.encode(&x)).unwrap();
    plan.write(pt, bytemuck::cast_slice(&positions)).unwrap();
    for &t in runs {
        plan.run(&RunSizes {
            rows: t as u32,
            ..Default::default()
        })
        .unwrap();
        let got = dtype.decode(&plan.read(args.y, 0, (t * n) as u64 * es).unwrap());
        let y = matmul::reference(&x[..t * k], &w, Some(&bias), None, t, k, n, Epilogue::None);
        let y: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let want = wgbert::ops::rope::reference(&y, &positions[..t], n_heads, head_dim, theta);
        super::assert_close(&format!("{what} T={t}"), &got, &want, atol, rtol);
    }
    listing
}
