//! Matmul: `Y[T, N] = X[T, K] · W^T (+ bias) (+ epilogue)` with W in PyTorch `[out, in]`
//! layout, f32 or f16 storage and f32 accumulation, for any T, K, N.
//!
//! Variants (`MatmulVariant`, one child module each): a shared-memory tiled kernel
//! (`tiled`, any adapter), a subgroup-reduction kernel (`subgroup`) that wins when there are
//! few rows (MLM head, pooled classifier), and a tensor-core kernel (`coop`) that replaces
//! the tiled one for f16 where the adapter has cooperative matrices and the kernel passed its
//! self-check on the device (`ops::tune::f16_kernels`, run when a model loads). Epilogues fuse bias,
//! residual add, an activation or GeGLU into the store, so GeGLU's 2I-wide intermediate
//! never reaches memory. The children know their kernels and tiles; the choice, recording
//! and self-check live here, and the children use only this module's types.
//!
//! `MatmulArgs::variant` forces a variant (an error where the adapter lacks it); `None`
//! chooses from the adapter. Then a step whose row count is only known at run time is
//! recorded twice when the adapter has subgroups: the subgroup kernel runs when the run has
//! at most `subgroup::SMALL_ROWS` rows and the tiled (or tensor-core) one otherwise.

pub mod coop;
mod kernel;
pub mod subgroup;
pub mod tiled;

use std::sync::Arc;

use crate::ops::check::Op;
use crate::ops::choice::{Choices, RowClass};
use crate::ops::coop::{self as coop_mode, Shape, compare, f16_values, named};
use crate::ops::{DType, Rows};
use crate::runtime::{self, Gpu, Kernel, Launch, PlanBuilder, RunSizes, TensorId};
use crate::{Error, Result};

pub use kernel::{Epilogue, MatmulParams, MatmulVariant, all_epilogues, kernel, with_rope};
pub use subgroup::SMALL_ROWS;

/// One matmul step. Sizes in elements; `rows` says which run size is T.
#[derive(Debug, Clone, Copy)]
pub struct MatmulArgs {
    /// `[T, K]` activations.
    pub x: TensorId,
    /// `[N, K]` weight (`[2N, K]` for GeGLU), PyTorch `[out, in]`.
    pub w: TensorId,
    /// `[N]` bias (`[2N]` for GeGLU), if the checkpoint has one.
    pub bias: Option<TensorId>,
    /// `[T, N]`, required by (and only allowed with) `Epilogue::Residual`.
    pub residual: Option<TensorId>,
    /// `[T, N]` output; fully written for the run's rows.
    pub y: TensorId,
    pub rows: Rows,
    pub k: u32,
    /// Output width; for GeGLU the half width I.
    pub n: u32,
    pub dtype: DType,
    pub epilogue: Epilogue,
    /// Forces a variant (tests, benchmarks); `None` lets `record` choose from the adapter.
    pub variant: Option<MatmulVariant>,
}

impl MatmulVariant {
    /// Whether the adapter can run this variant, or why not.
    pub fn supported(self, caps: &runtime::Capabilities) -> std::result::Result<(), String> {
        match self {
            MatmulVariant::Tiled => Ok(()),
            MatmulVariant::Subgroup if subgroup::supported(caps) => Ok(()),
            MatmulVariant::Subgroup => Err("subgroups".into()),
            MatmulVariant::Coop => coop::supported(caps).map(|_| ()),
        }
    }
}

/// Where a product's `[T, n]` result goes: columns `col0..col0 + n` of an output (and a
/// residual) whose rows hold `ldy` elements. A weight held in row pieces (`model::split`)
/// runs one product per piece, each filling its own columns of the whole output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutCols {
    pub ldy: u32,
    pub col0: u32,
}

impl OutCols {
    /// The whole output: `n` columns from column 0.
    pub fn whole(n: u32) -> Self {
        OutCols { ldy: n, col0: 0 }
    }
}

/// Parameters and workgroup count for `rows` rows with workgroup tiles of `(rows, output
/// columns)` (zero workgroups when `rows` is 0), writing the whole output.
pub fn params(tile: (u32, u32), rows: u32, k: u32, n: u32) -> MatmulParams {
    params_cols(tile, rows, k, n, OutCols::whole(n))
}

/// `params` for a product that writes columns `cols` of a wider output.
pub fn params_cols(tile: (u32, u32), rows: u32, k: u32, n: u32, cols: OutCols) -> MatmulParams {
    let (tiles_m, tiles_n) = (rows.div_ceil(tile.0), n.div_ceil(tile.1));
    MatmulParams {
        rows,
        k,
        n,
        tiles_n,
        tiles: tiles_m.saturating_mul(tiles_n),
        ldy: cols.ldy,
        col0: cols.col0,
        ..Default::default()
    }
}

/// Every matmul kernel the crate can create, tensor-core builds at both fragment sizes
/// included (for the shader translation test).
pub fn variants() -> Vec<Kernel> {
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for e in all_epilogues() {
            for bias in [false, true] {
                v.extend(tiled::CANDIDATES.map(|c| tiled::kernel(dtype, e, bias, c)));
                v.extend(tiled::direct_kernel(dtype, e, bias, tiled::DEFAULT, 768));
                v.push(kernel(MatmulVariant::Subgroup, dtype, e, bias));
            }
        }
    }
    v.extend(coop::variants());
    v
}

/// Floating-point operations of one product (2 per multiply-add; GeGLU counts both halves).
pub fn flops(t: u64, k: u64, n: u64, epilogue: Epilogue) -> u64 {
    let width = match epilogue {
        Epilogue::GeGlu(_) => 2 * n,
        _ => n,
    };
    2 * t * k * width
}

/// Checks the arguments against the tensors' sizes and returns the most rows they hold.
pub(crate) fn check(b: &PlanBuilder, label: &str, a: &MatmulArgs) -> Result<u32> {
    check_cols(b, label, a, OutCols::whole(a.n))
}

/// `check` for a product that writes columns `cols` of its output (and residual).
fn check_cols(b: &PlanBuilder, label: &str, a: &MatmulArgs, cols: OutCols) -> Result<u32> {
    let op = Op::new("matmul", label);
    if a.k == 0 || a.n == 0 {
        return Err(op.err(
            "k and n",
            "positive",
            format_args!("k = {}, n = {}", a.k, a.n),
        ));
    }
    op.dtype(b.gpu().caps(), a.dtype)?;
    let es = a.dtype.size();
    let (k, n) = (a.k as u64, a.n as u64);
    let w_rows = match a.epilogue {
        Epilogue::GeGlu(_) => 2 * n,
        _ => n,
    };
    op.bytes(b, "weight", a.w, w_rows * k * es)?;
    if let Some(bias) = a.bias {
        op.bytes(b, "bias", bias, w_rows * es)?;
    }
    if cols.ldy < a.n || cols.col0 > cols.ldy - a.n {
        return Err(op.err(
            "output columns",
            format_args!("col0 + n <= ldy (n = {})", a.n),
            format_args!("col0 = {}, ldy = {}", cols.col0, cols.ldy),
        ));
    }
    // Rows whose written columns lie inside a buffer of `bytes`.
    let out_rows = |bytes: u64| {
        let (elems, ldy, end) = (bytes / es, cols.ldy as u64, (cols.col0 + a.n) as u64);
        if elems < end {
            0
        } else {
            (elems - end) / ldy + 1
        }
    };
    let mut cap = (b.bytes(a.x) / (k * es)).min(out_rows(b.bytes(a.y)));
    match (a.epilogue, a.residual) {
        (Epilogue::Residual, Some(r)) => cap = cap.min(out_rows(b.bytes(r))),
        (Epilogue::Residual, None) => {
            return Err(op.err("residual", "set for Epilogue::Residual", "None"));
        }
        (_, Some(_)) => {
            return Err(op.err(
                "residual",
                "None unless the epilogue is Residual",
                "a tensor",
            ));
        }
        (_, None) => {}
    }
    // Indices are u32 in the shaders.
    let cap = cap.min(u32::MAX as u64 / k.max(n).max(cols.ldy as u64)) as u32;
    op.rows(a.rows, cap)?;
    Ok(cap)
}

/// Whether the automatic choice takes the tensor-core kernel for `dtype` on this device
/// under `choices`, with its shape, or why not (`ops::coop::status`).
pub fn coop_status(
    gpu: &Gpu,
    choices: &Choices,
    dtype: DType,
) -> std::result::Result<Shape, String> {
    let verdict = choices.matmul_check.as_ref();
    coop_mode::status(choices.coop, verdict, gpu.caps(), dtype, coop::supported)
}

/// Runs the tensor-core kernel at its untuned configuration on `coop::checks()` and
/// compares with `reference`.
pub fn self_check(gpu: &Arc<Gpu>, shape: Shape) -> Result<()> {
    let config = coop::default_for(shape, gpu.caps());
    check_coop(gpu, shape, config, &coop::checks(), 17).map_err(|e| named("matmul self-check", e))
}

/// Runs the tensor-core kernel at `shape` and `config` on `cases` (inputs seeded from
/// `seed`) and compares with `reference` within its self-check tolerance: the self-check
/// (`coop::checks()`) and the autotuner's check of each candidate.
pub fn check_coop(
    gpu: &Arc<Gpu>,
    shape: Shape,
    config: coop::Config,
    cases: &[coop::Case],
    seed: u64,
) -> Result<()> {
    let tol = (coop::CHECK_ATOL, coop::CHECK_RTOL);
    let kernels: Vec<Kernel> = cases
        .iter()
        .map(|c| coop::kernel(shape, config, c.epilogue, c.bias, c.k as u32))
        .collect();
    // Compiled together first: on several threads where the machine has the cores.
    runtime::pipeline::prepare(gpu, &kernels)?;
    for (i, (&case, kernel)) in cases.iter().zip(kernels).enumerate() {
        let build = (kernel, coop::tile(shape, config, case.epilogue));
        check_build(gpu, DType::F16, case, build, tol, seed + 5 * i as u64)?;
    }
    Ok(())
}

/// Runs one build of a matmul kernel (`(kernel, tile)`, as `record_kernel` takes them) on
/// one case of deterministic inputs (`seed`) and compares it
/// with `reference` within `(atol, rtol)`; the first element off, or an error of the run.
/// The self-checks of the tensor-core kernel and of the autotuner's candidates.
pub fn check_build(
    gpu: &Arc<Gpu>,
    dtype: DType,
    case: coop::Case,
    (kernel, tile): (Kernel, (u32, u32)),
    (atol, rtol): (f64, f64),
    seed: u64,
) -> Result<()> {
    let coop::Case {
        t,
        k,
        n,
        epilogue,
        bias,
    } = case;
    let w_rows = match epilogue {
        Epilogue::GeGlu(_) => 2 * n,
        _ => n,
    };
    let x = f16_values(t * k, seed, 1.0);
    let w = f16_values(w_rows * k, seed + 1, 0.5);
    let bv = f16_values(w_rows, seed + 2, 1.0);
    let res = f16_values(t * n, seed + 3, 2.0);
    let residual = epilogue == Epilogue::Residual;
    let es = dtype.size();
    let mut b = PlanBuilder::new(gpu.clone());
    let xt = b.input("check x", (t * k) as u64 * es);
    let rt = b.input("check residual", (t * n) as u64 * es);
    let wbuf = gpu.upload("check w", &dtype.encode(&w))?;
    let bbuf = gpu.upload("check bias", &dtype.encode(&bv))?;
    let wt = b.external("check w", &wbuf);
    let bt = b.external("check bias", &bbuf);
    let yt = b.output("check y", (t * n) as u64 * es);
    let args = MatmulArgs {
        x: xt,
        w: wt,
        bias: bias.then_some(bt),
        residual: residual.then_some(rt),
        y: yt,
        rows: Rows::Fixed(t as u32),
        k: k as u32,
        n: n as u32,
        dtype,
        epilogue,
        variant: None,
    };
    record_kernel(&mut b, "check", &args, kernel, tile)?;
    let mut plan = b.build()?;
    plan.write(xt, &dtype.encode(&x))?;
    plan.write(rt, &dtype.encode(&res))?;
    plan.run(&RunSizes::default())?;
    let got = dtype.decode(&plan.read(yt, 0, (t * n) as u64 * es)?);
    let (bias_v, res_v) = (bias.then_some(&bv[..]), residual.then_some(&res[..]));
    let want = reference(&x, &w, bias_v, res_v, t, k, n, epilogue);
    compare(&got, &want, (atol, rtol), |j| {
        format!(
            "T={t} K={k} N={n} {epilogue:?} bias={bias}: y[{}, {}]",
            j / n,
            j % n
        )
    })
}

/// Records the step(s) of one matmul. The variant is `args.variant` if set (an error when the
/// adapter lacks it), else chosen from the adapter, the row count and `coop_status` (see the
/// module docs); tile configurations per row class come from `choices` (the family's
/// default where it holds none). Rows past the buffers' capacity are clamped to it (the
/// plan's owner checks run sizes).
pub fn record(
    b: &mut PlanBuilder,
    choices: &Choices,
    label: &str,
    args: &MatmulArgs,
) -> Result<()> {
    record_cols(b, choices, label, args, OutCols::whole(args.n))
}

/// `record` for a product that writes columns `cols` of a wider output (and reads the
/// same columns of the residual): one row piece of a weight held in pieces.
pub fn record_cols(
    b: &mut PlanBuilder,
    choices: &Choices,
    label: &str,
    args: &MatmulArgs,
    cols: OutCols,
) -> Result<()> {
    check_cols(b, label, args, cols)?;
    let steps = steps(b, choices, label, args)?;
    let whole = steps.len() == 1;
    for step in steps {
        let step_label = step.label(label, whole);
        let range = (step.lo, step.hi);
        record_range(
            b,
            step_label,
            (step.kernel, step.tile),
            args,
            range,
            None,
            cols,
        )?;
    }
    Ok(())
}

/// One launch of `record`: a kernel build and its workgroup tile, run for rows `lo..=hi`.
#[derive(Debug, Clone)]
struct Step {
    kernel: Kernel,
    /// Workgroup tile: (rows, output columns).
    tile: (u32, u32),
    /// The tile configuration's name, for kernels tuned per row class.
    config: Option<String>,
    lo: u32,
    hi: u32,
}

impl Step {
    /// The step's label: the op's label, with the kernel, configuration and rows where the
    /// op has several steps.
    fn label(&self, label: &str, whole: bool) -> String {
        if whole {
            label.to_string()
        } else {
            let cfg = self
                .config
                .as_ref()
                .map(|c| format!(" {c}"))
                .unwrap_or_default();
            let (shader, lo, hi) = (self.kernel.shader, self.lo, self.hi);
            format!("{label} ({shader}{cfg}, rows {lo}..={hi})")
        }
    }
}

/// The launches `record` makes for `args`: the variant per row range (see the module docs),
/// the chosen configuration per row class.
fn steps(b: &PlanBuilder, choices: &Choices, label: &str, args: &MatmulArgs) -> Result<Vec<Step>> {
    let caps = b.gpu().caps().clone();
    let coop_shape = coop_status(b.gpu(), choices, args.dtype).ok();
    // The variant for many rows.
    let big = if coop_shape.is_some() {
        MatmulVariant::Coop
    } else {
        MatmulVariant::Tiled
    };
    let has_subgroups = subgroup::supported(&caps);
    // (variant, rows it runs for: lo..=hi)
    let plan: Vec<(MatmulVariant, u32, u32)> = match args.variant {
        Some(v) => {
            if let Err(why) = v.supported(&caps) {
                let what = match v {
                    MatmulVariant::Coop => "cooperative matrices: ",
                    _ => "",
                };
                return Err(Error::Unsupported(format!(
                    "matmul '{label}': the {v:?} variant needs {what}{why}"
                )));
            }
            if v == MatmulVariant::Coop && args.dtype != DType::F16 {
                return Err(Error::Unsupported(format!(
                    "matmul '{label}': the Coop variant stores f16 only"
                )));
            }
            vec![(v, 0, u32::MAX)]
        }
        None if !has_subgroups => vec![(big, 0, u32::MAX)],
        None => match args.rows {
            Rows::Fixed(r) if r <= SMALL_ROWS => vec![(MatmulVariant::Subgroup, 0, u32::MAX)],
            Rows::Fixed(_) => vec![(big, 0, u32::MAX)],
            _ => vec![
                (MatmulVariant::Subgroup, 0, SMALL_ROWS),
                (big, SMALL_ROWS + 1, u32::MAX),
            ],
        },
    };
    let bias = args.bias.is_some();
    // The tiled and tensor-core kernels run each row class at its chosen configuration
    // (`ops::choice`, tuned by `ops::tune`).
    let mut steps: Vec<Step> = Vec::new();
    for (variant, lo, hi) in plan {
        match variant {
            MatmulVariant::Tiled => {
                let config = |class| choices.tiled(class, args.dtype).unwrap_or(tiled::DEFAULT);
                for (c, a, z) in class_ranges(args.rows, lo, hi, config) {
                    let kernel = tiled::build(&caps, args.dtype, args.epilogue, bias, c, args.k);
                    steps.push(Step {
                        kernel,
                        tile: tiled::tile(c, args.epilogue),
                        config: Some(c.name()),
                        lo: a,
                        hi: z,
                    });
                }
            }
            MatmulVariant::Subgroup => {
                steps.push(Step {
                    kernel: kernel(variant, args.dtype, args.epilogue, bias),
                    tile: subgroup::tile(),
                    config: None,
                    lo,
                    hi,
                });
            }
            MatmulVariant::Coop => {
                let shape = coop::supported(&caps).map_err(Error::Unsupported)?;
                let default = coop::default_for(shape, &caps);
                let config = |class| choices.coop_matmul(class).unwrap_or(default);
                for (c, a, z) in class_ranges(args.rows, lo, hi, config) {
                    steps.push(Step {
                        kernel: coop::kernel(shape, c, args.epilogue, bias, args.k),
                        tile: coop::tile(shape, c, args.epilogue),
                        config: Some(c.name()),
                        lo: a,
                        hi: z,
                    });
                }
            }
        }
    }
    Ok(steps)
}

/// Rotary position embedding fused into a Wqkv projection (`record_rope`): the output is
/// `[T, 3H]` = `[Q | K | V]` in heads of `head_dim`, and Q and K are rotated by the angle of
/// each row's position (`ops::rope`).
#[derive(Debug, Clone, Copy)]
pub struct RopeArgs {
    /// `[T]` u32 positions (restarting at 0 in every sequence).
    pub positions: TensorId,
    pub n_heads: u32,
    pub head_dim: u32,
    /// The rotation's frequencies (`ops::rope::Frequencies::theta` for a plain RoPE).
    pub freq: crate::ops::rope::Frequencies,
}

/// Whether `kernel` with workgroup `tile` can rotate in its store: each of its tiles holds
/// whole heads (tile width a multiple of `head_dim`, so tiles start at head boundaries) and
/// each partner column d/2 away is in reach: in the same thread for the tiled kernel (its
/// columns are 16 apart, so d/2 must be a multiple of 16), in the staged row for the
/// tensor-core one. The subgroup kernel (one column per subgroup) never can.
pub fn rope_fusable(kernel: &Kernel, tile: (u32, u32), head_dim: u32) -> bool {
    let whole_heads = head_dim > 0 && tile.1.is_multiple_of(head_dim);
    match kernel.shader {
        "matmul" => whole_heads && (head_dim / 2).is_multiple_of(16),
        "matmul_coop" => whole_heads && head_dim.is_multiple_of(2),
        _ => false,
    }
}

/// Records the Wqkv projection `args` (plain epilogue, `n = 3 n_heads head_dim`) with RoPE:
/// fused into each step's store where the step's kernel allows it (`rope_fusable`), else the
/// plain step followed by the `ops::rope` pass for the same rows. Same variant and
/// configuration choice as `record`.
pub fn record_rope(
    b: &mut PlanBuilder,
    choices: &Choices,
    label: &str,
    args: &MatmulArgs,
    rope: &RopeArgs,
) -> Result<()> {
    check_rope(b, label, args, rope)?;
    let steps = steps(b, choices, label, args)?;
    let whole = steps.len() == 1;
    let mut freq = None;
    for step in steps {
        let step_label = step.label(label, whole);
        let Step {
            kernel,
            tile,
            lo,
            hi,
            ..
        } = step;
        rope_step(b, step_label, args, rope, &mut freq, kernel, tile, lo, hi)?;
    }
    Ok(())
}

#[doc(hidden)]
/// `record_rope` with a given build (tests: every configuration, the emulated tensor-core
/// kernel), as `record_kernel` is to `record`.
pub fn record_rope_kernel(
    b: &mut PlanBuilder,
    label: &str,
    args: &MatmulArgs,
    rope: &RopeArgs,
    kernel: Kernel,
    tile: (u32, u32),
) -> Result<()> {
    check_rope(b, label, args, rope)?;
    let label = label.to_string();
    rope_step(b, label, args, rope, &mut None, kernel, tile, 0, u32::MAX)
}

fn check_rope(b: &PlanBuilder, label: &str, args: &MatmulArgs, rope: &RopeArgs) -> Result<()> {
    check(b, label, args)?;
    let op = Op::new("matmul", label);
    if args.epilogue != Epilogue::None || args.residual.is_some() {
        return Err(op.err(
            "epilogue",
            "None with RoPE",
            format_args!("{:?}", args.epilogue),
        ));
    }
    let width = 3u64 * rope.n_heads as u64 * rope.head_dim as u64;
    if args.n as u64 != width {
        return Err(op.err(
            "n",
            format_args!("3 n_heads head_dim = {width} with RoPE"),
            args.n,
        ));
    }
    crate::ops::rope::check(
        Op::new("rope", label),
        rope.n_heads,
        rope.head_dim,
        &rope.freq,
    )
}

/// One step of `record_rope` for rows `lo..=hi`: fused, or plain then the RoPE pass. `freq`
/// is the frequency table of the fused steps, uploaded by the first one that needs it.
#[allow(clippy::too_many_arguments)]
fn rope_step(
    b: &mut PlanBuilder,
    step_label: String,
    args: &MatmulArgs,
    rope: &RopeArgs,
    freq: &mut Option<TensorId>,
    kernel: Kernel,
    tile: (u32, u32),
    lo: u32,
    hi: u32,
) -> Result<()> {
    if !rope_fusable(&kernel, tile, rope.head_dim) {
        let pass = format!("{step_label} rope");
        let whole = OutCols::whole(args.n);
        record_range(b, step_label, (kernel, tile), args, (lo, hi), None, whole)?;
        let r = (rope.n_heads, rope.head_dim, rope.freq);
        return crate::ops::rope::record_range(
            b,
            &pass,
            args.y,
            rope.positions,
            args.rows,
            r,
            args.dtype,
            (lo, hi),
        );
    }
    let table = match *freq {
        Some(t) => t,
        None => {
            let bits: Vec<u32> = rope.freq.values().iter().map(|f| f.to_bits()).collect();
            let buf = b
                .gpu()
                .upload("rope inv_freq", bytemuck::cast_slice(&bits))?;
            *freq.insert(b.external(&format!("{step_label} inv_freq"), &buf))
        }
    };
    let kernel = kernel::with_rope(kernel, rope.head_dim);
    let fused = Some((rope.positions, table));
    let whole = OutCols::whole(args.n);
    record_range(b, step_label, (kernel, tile), args, (lo, hi), fused, whole)
}

/// The steps of a kernel tuned per row class over rows `lo..=hi`: one per row class the
/// rows meet, at the class's configuration (`config`), neighbours with the same
/// configuration merged (a fixed row count meets one class).
fn class_ranges<C: Copy + PartialEq>(
    rows: Rows,
    lo: u32,
    hi: u32,
    config: impl Fn(RowClass) -> C,
) -> Vec<(C, u32, u32)> {
    // The rows that can occur: a fixed count, or any within lo..=hi.
    let (seen_lo, seen_hi) = match rows {
        Rows::Fixed(r) => (r, r),
        _ => (lo, hi),
    };
    let mut out: Vec<(C, u32, u32)> = Vec::new();
    for class in RowClass::ALL {
        let (c_lo, c_hi) = class.rows();
        let (a, z) = (lo.max(c_lo), hi.min(c_hi));
        if seen_lo.max(c_lo) > seen_hi.min(c_hi) || a > z {
            continue;
        }
        let c = config(class);
        match out.last_mut() {
            Some(last) if last.0 == c => last.2 = z,
            _ => out.push((c, a, z)),
        }
    }
    match out.as_mut_slice() {
        // One configuration for every row that can occur: the whole range, as asked.
        [only] => {
            (only.1, only.2) = (lo, hi);
            out
        }
        // The rows that can occur lie outside lo..=hi: the step never runs.
        [] => vec![(config(RowClass::Large), lo, hi)],
        _ => out,
    }
}

/// Records one matmul with a given build of a variant (tests, benchmarks, self-checks: the
/// emulated tensor-core kernel, say) and its workgroup tile `(rows, output columns)`.
/// Same arguments and checks as `record`; `args.variant` is ignored.
pub fn record_kernel(
    b: &mut PlanBuilder,
    label: &str,
    args: &MatmulArgs,
    kernel: Kernel,
    tile: (u32, u32),
) -> Result<()> {
    record_kernel_cols(b, label, args, (kernel, tile), OutCols::whole(args.n))
}

#[doc(hidden)]
/// `record_kernel` writing columns `cols` of the output (tests: every build with an output
/// column offset and row stride).
pub fn record_kernel_cols(
    b: &mut PlanBuilder,
    label: &str,
    args: &MatmulArgs,
    build: (Kernel, (u32, u32)),
    cols: OutCols,
) -> Result<()> {
    check_cols(b, label, args, cols)?;
    record_range(b, label.to_string(), build, args, (0, u32::MAX), None, cols)
}

/// Records one launch of `kernel` that runs when the run's rows are in `lo..=hi`, clamped to
/// the buffers' capacity; `rope` (positions, frequency table) is bound after bias and
/// residual for a build with RoPE fused (`kernel::with_rope`); the result goes to columns
/// `cols` of the output.
fn record_range(
    b: &mut PlanBuilder,
    step_label: String,
    (kernel, tile): (Kernel, (u32, u32)),
    args: &MatmulArgs,
    (lo, hi): (u32, u32),
    rope: Option<(TensorId, TensorId)>,
    cols: OutCols,
) -> Result<()> {
    let mut cap = check_cols(b, &step_label, args, cols)?;
    let mut bindings = vec![args.x, args.w, args.y];
    bindings.extend(args.bias);
    bindings.extend(args.residual);
    if let Some((positions, freq)) = rope {
        // Rows past the positions the plan holds are not computed.
        cap = cap.min(u32::try_from(b.bytes(positions) / 4).unwrap_or(u32::MAX));
        bindings.extend([positions, freq]);
    }
    let max_dim = b.gpu().caps().max_workgroups_per_dim;
    let a = *args;
    let name = step_label.clone();
    b.step(step_label, kernel, &bindings, move |s: &RunSizes| {
        let want = a.rows.eval(s);
        if want > cap {
            log::warn!("matmul '{name}': {want} rows clamped to the capacity {cap}");
        }
        let rows = want.min(cap);
        let p = params_cols(tile, rows, a.k, a.n, cols);
        let wg = if rows < lo || rows > hi || p.tiles == 0 {
            [0, 0, 0]
        } else {
            runtime::grid(p.tiles, max_dim)
        };
        Launch::new(&p, wg)
    })
}

/// CPU reference with f64 accumulation. `x` is `[t, k]`, `w` `[n, k]` (`[2n, k]` for GeGLU),
/// `bias` `[n]` (`[2n]`), `residual` `[t, n]` (read by `Epilogue::Residual` only).
#[allow(clippy::too_many_arguments)]
pub fn reference(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    t: usize,
    k: usize,
    n: usize,
    epilogue: Epilogue,
) -> Vec<f64> {
    let dot = |r: usize, c: usize| -> f64 {
        let xr = &x[r * k..(r + 1) * k];
        let wr = &w[c * k..(c + 1) * k];
        let s: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
        s + bias.map_or(0.0, |b| b[c] as f64)
    };
    let mut y = Vec::with_capacity(t * n);
    for r in 0..t {
        for c in 0..n {
            let v = dot(r, c);
            y.push(match epilogue {
                Epilogue::None => v,
                Epilogue::Residual => v + residual.map_or(0.0, |res| res[r * n + c] as f64),
                Epilogue::Act(a) => a.apply(v),
                Epilogue::GeGlu(a) => a.apply(v) * dot(r, n + c),
            });
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Activation;

    #[test]
    fn workgroup_counts_cover_every_output() {
        let p = params(tiled::tile(tiled::DEFAULT, Epilogue::None), 65, 24, 129);
        assert_eq!((p.tiles_n, p.tiles), (3, 6));
        let geglu = Epilogue::GeGlu(Activation::GeluErf);
        let p = params(tiled::tile(tiled::DEFAULT, geglu), 64, 8, 33);
        assert_eq!((p.tiles_n, p.tiles), (2, 2));
        let p = params(subgroup::tile(), 300, 8, 17);
        assert_eq!((p.tiles_n, p.tiles), (5, 5));
        assert_eq!(params(subgroup::tile(), 0, 8, 17).tiles, 0);
        assert_eq!(std::mem::size_of::<MatmulParams>(), 32);
    }

    #[test]
    fn kernels_bind_bias_and_residual_after_y() {
        let k = tiled::kernel(DType::F16, Epilogue::Residual, true, tiled::DEFAULT);
        assert_eq!(k.bindings.len(), 5);
        assert!(k.name().contains("BIAS=4") && k.name().contains("RESIDUAL=5"));
        let k = kernel(
            MatmulVariant::Subgroup,
            DType::F32,
            Epilogue::Residual,
            false,
        );
        assert!(k.name().contains("RESIDUAL=4"), "{}", k.name());
        // 40 epilogue x bias x dtype builds: each tiled candidate, the direct build of the
        // default (CPU adapters), the subgroup kernel.
        let tiled = 40 * tiled::CANDIDATES.len();
        assert_eq!(variants().len(), tiled + 40 + 40 + coop::variants().len());
    }

    #[test]
    fn reference_geglu_pairs_input_and_gate_rows() {
        // x = [1, 2]; W rows: input [1, 0], gate [0, 1]; bias [0.5, -1].
        let y = reference(
            &[1.0, 2.0],
            &[1.0, 0.0, 0.0, 1.0],
            Some(&[0.5, -1.0]),
            None,
            1,
            2,
            1,
            Epilogue::GeGlu(Activation::Relu),
        );
        assert_eq!(y, vec![1.5 * 1.0]);
    }
}
