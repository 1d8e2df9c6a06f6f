//! Varlen flash attention over packed sequences (`shaders/attention.wgsl`): per sequence and
//! head, `softmax(q k^T / sqrt(d)) v` with an online softmax in f32, globally or within a band
//! `|i - j| <= window`. Never stores a score matrix; banded layers visit only the key tiles
//! that intersect the band, so their cost is linear in the sequence length.
//!
//! Variants (`AttentionVariant`): this portable kernel, and a tensor-core one (child module
//! `coop`) that `record` chooses for f16 where the adapter has cooperative matrices and its
//! self-check has passed on the device (`ops::tune::f16_kernels`, run when a model loads).
//! `AttentionArgs::variant` forces one, as `MatmulArgs::variant` does for matmul.

pub mod coop;
mod kernel;

pub use kernel::AttentionParams;

use std::sync::Arc;

use crate::ops::DType;
use crate::ops::check::Op;
use crate::ops::choice::Choices;
use crate::ops::coop::{self as coop_mode, Shape, compare, f16_values, named};
use crate::ops::rownorm::Reduce;
use crate::runtime::{
    self, Access, Capabilities, Gpu, Kernel, Launch, PlanBuilder, RunSizes, TensorId,
};
use crate::{Error, Result};

/// Which kernel computes the attention; `record` picks one when `AttentionArgs::variant` is
/// `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttentionVariant {
    /// `shaders/attention.wgsl`: any adapter, f32 or f16.
    Portable,
    /// Cooperative matrices (tensor cores), f16 only. Needs `coop::supported`.
    Coop,
}

impl AttentionVariant {
    /// The variant's name in plan listings and reports (its shader).
    pub fn name(self) -> &'static str {
        match self {
            AttentionVariant::Portable => "attention",
            AttentionVariant::Coop => coop::SHADER,
        }
    }
}

/// Keys per online-softmax chunk (`CH` in the shader); the key tile is a multiple of it.
const CH: u32 = 8;
/// Head sizes with a compiled variant.
pub const HEAD_DIMS: [u32; 3] = [16, 32, 64];
/// Windows at or above this are global in effect; clamping keeps `q + window` in u32.
const WINDOW_CLAMP: u32 = 1 << 30;

/// One attention step.
#[derive(Debug, Clone, Copy)]
pub struct AttentionArgs {
    /// `[T, 3H]` after RoPE: rows `[Q | K | V]`, head h at columns `h * head_dim` of each block.
    pub qkv: TensorId,
    /// `[B + 1]` u32 row offsets of the sequences.
    pub cu_seqlens: TensorId,
    /// `[B]` u32: sequence s attends only to its first `key_lens[s]` rows (all its rows are
    /// still queries; PyLate's unattended query expansion). `None`: every row is a key.
    pub key_lens: Option<TensorId>,
    /// `[T, H]`: heads concatenated in order.
    pub out: TensorId,
    pub n_heads: u32,
    pub head_dim: u32,
    /// `None`: every key of the sequence; `Some(w)`: keys with `|i - j| <= w`.
    pub window: Option<u32>,
    pub dtype: DType,
    /// Forces a variant (tests, benchmarks); `None` lets `record` choose from the adapter.
    pub variant: Option<AttentionVariant>,
}

/// Head columns of q and of the output each invocation of the portable kernel holds (its
/// registers stay bounded at every head size: 255 registers and spills to memory on NVIDIA
/// when one invocation held a 64-wide row, `docs/gpu-compilers.md`).
const LANE_COLUMNS: u32 = 16;
/// Most invocations of a portable workgroup (query rows times lanes per row).
const MAX_WORKGROUP: u32 = 256;
/// Bytes of the K and V tiles of the default configuration: 8 KiB keeps a 128-invocation
/// workgroup at half the occupancy of AMD's 64 KiB LDS per compute unit and below NVIDIA's
/// per-warp share of shared memory at 24 warps.
const DEFAULT_TILE_BYTES: u32 = 8192;

/// Invocations per query row of the portable kernel at `head_dim` (its `LANES`): 1, 2, 4 at
/// head sizes 16, 32, 64.
pub fn lanes(head_dim: u32) -> u32 {
    (head_dim / LANE_COLUMNS).max(1)
}

/// How the lanes of a row sum their partial scores on this adapter: subgroup shuffles where
/// every subgroup holds whole rows, else workgroup memory.
pub fn reduce_for(head_dim: u32, caps: &Capabilities) -> Reduce {
    match Reduce::best(caps) {
        Reduce::Subgroup if caps.subgroup_min_size >= lanes(head_dim) => Reduce::Subgroup,
        _ => Reduce::Workgroup,
    }
}

/// Keys per staged tile: K and V tiles of `bc * head_dim` f32 within `DEFAULT_TILE_BYTES`,
/// halved while the device allows less workgroup memory.
fn key_tile(head_dim: u32, max_workgroup_storage: u32) -> u32 {
    let mut bc = DEFAULT_TILE_BYTES / (2 * 4 * head_dim);
    while bc > CH && 2 * bc * head_dim * 4 > max_workgroup_storage {
        bc /= 2;
    }
    bc
}

/// A tile configuration of either kernel: `br` query rows per workgroup (for the portable
/// kernel `lanes(head_dim)` invocations each) and `bc` keys per staged K/V tile (defined
/// with the other choices in `ops::choice`).
pub use crate::ops::choice::AttentionTiles as Tiles;

impl Tiles {
    /// The static choice: 128 invocations (128 / `lanes` query rows), K and V tiles within
    /// 8 KiB (fewer keys where the device allows less workgroup memory).
    pub fn default_for(head_dim: u32, caps: &Capabilities) -> Tiles {
        Tiles {
            br: 128 / lanes(head_dim),
            bc: key_tile(head_dim, caps.max_workgroup_storage),
        }
    }

    /// Workgroup memory of the portable kernel at `head_dim`: the two f32 tiles, and the
    /// lanes' partial scores where they are summed through workgroup memory.
    pub fn bytes(self, head_dim: u32, reduce: Reduce) -> u32 {
        let sums = match reduce {
            Reduce::Workgroup if lanes(head_dim) > 1 => self.invocations(head_dim) * CH * 4,
            _ => 0,
        };
        2 * self.bc * head_dim * 4 + sums
    }

    /// Invocations of the portable kernel's workgroup at `head_dim`.
    pub fn invocations(self, head_dim: u32) -> u32 {
        self.br * lanes(head_dim)
    }

    /// Whether the device can run this configuration of the portable kernel at `head_dim`.
    pub fn fits(self, head_dim: u32, caps: &Capabilities) -> bool {
        let wg = self.invocations(head_dim);
        self.bc.is_multiple_of(CH)
            && self.bytes(head_dim, reduce_for(head_dim, caps)) <= caps.max_workgroup_storage
            && wg <= caps.max_invocations.min(MAX_WORKGROUP)
    }

    /// `BRxBC`, as reports and sweeps name it.
    pub fn name(self) -> String {
        format!("{}x{}", self.br, self.bc)
    }
}

/// Candidate tiles of the portable kernel: 32 to 128 query rows, 16 to 64 keys per tile
/// (those that `fits` a device and head size: at most 256 invocations). `bench --kernels
/// --sweep` times each; the tests check each against the reference.
pub const CANDIDATES: [Tiles; 8] = [
    Tiles { br: 32, bc: 16 },
    Tiles { br: 32, bc: 32 },
    Tiles { br: 64, bc: 16 },
    Tiles { br: 64, bc: 32 },
    Tiles { br: 64, bc: 64 },
    Tiles { br: 128, bc: 16 },
    Tiles { br: 128, bc: 32 },
    Tiles { br: 128, bc: 64 },
];

/// The candidates this device can run at `head_dim`.
pub fn fitting(head_dim: u32, caps: &Capabilities) -> Vec<Tiles> {
    CANDIDATES
        .into_iter()
        .filter(|t| t.fits(head_dim, caps))
        .collect()
}

/// The portable kernel of one precision, head size and tile configuration, with the row
/// sums this adapter does best (`reduce_for`).
pub fn kernel(caps: &Capabilities, dtype: DType, head_dim: u32, tiles: Tiles) -> Kernel {
    kernel_with(reduce_for(head_dim, caps), dtype, head_dim, tiles)
}

/// The portable kernel with the row sums of `reduce` (where a row has more than one lane).
pub fn kernel_with(reduce: Reduce, dtype: DType, head_dim: u32, tiles: Tiles) -> Kernel {
    let k = dtype
        .apply(Kernel::new(
            "attention",
            "main",
            &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
        ))
        .with_params::<AttentionParams>()
        .define("HEAD_DIM", head_dim)
        .define("BR", tiles.br)
        .define("BC", tiles.bc)
        .define("LANES", lanes(head_dim));
    match (lanes(head_dim) > 1, reduce) {
        (false, _) => k,
        (true, Reduce::Subgroup) => k.define("SUBGROUP", 1),
        (true, Reduce::Workgroup) => k.define("SHARED_SUMS", 1),
    }
}

/// Query rows per workgroup of an attention kernel: its `BR` define (both shaders have one).
fn query_rows(kernel: &Kernel) -> Result<u32> {
    kernel
        .defines
        .iter()
        .find(|(k, _)| k == "BR")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| Error::Unsupported(format!("{}: no BR define", kernel.name())))
}

/// Every variant (the default tiles and every candidate, both row sums), and the
/// tensor-core builds, for the translation test.
pub fn variants() -> Vec<Kernel> {
    let caps = Capabilities {
        max_workgroup_storage: 32768,
        max_invocations: 1024,
        ..Default::default()
    };
    let mut v = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        for d in HEAD_DIMS {
            let default = Tiles::default_for(d, &caps);
            for tiles in std::iter::once(default).chain(CANDIDATES) {
                for reduce in Reduce::ALL {
                    if tiles.invocations(d) <= MAX_WORKGROUP && tiles.bytes(d, reduce) <= 32768 {
                        v.push(kernel_with(reduce, dtype, d, tiles));
                    }
                }
            }
        }
    }
    v.sort_by_key(|k| k.name());
    v.dedup();
    v.extend(coop::variants());
    v
}

/// Records one attention step. Uses `RunSizes::segments` and `RunSizes::max_segment` (which
/// must be the longest sequence of the batch); sequences past the capacity of `cu_seqlens`
/// are not computed. The variant is `args.variant` if set (an error where the adapter lacks
/// it), else the tensor-core one where `coop_status` allows it, else the portable one; each
/// at the tiles `choices` holds for the head size (else the kernel's default).
pub fn record(
    b: &mut PlanBuilder,
    choices: &Choices,
    label: &str,
    args: &AttentionArgs,
) -> Result<()> {
    record_scaled(b, choices, label, args, 1.0)
}

/// `record` with the scores multiplied by `score_scale` besides `1 / sqrt(head_dim)`: the
/// square of a scaled RoPE's `attention_factor` (yarn, longrope), which transformers applies
/// to both the rotated queries and keys (their cos and sin).
pub fn record_scaled(
    b: &mut PlanBuilder,
    choices: &Choices,
    label: &str,
    args: &AttentionArgs,
    score_scale: f32,
) -> Result<()> {
    if !(score_scale.is_finite() && score_scale > 0.0) {
        return Err(Op::new("attention", label).err("score_scale", "finite and > 0", score_scale));
    }
    let shape = match args.variant {
        Some(AttentionVariant::Portable) => None,
        Some(AttentionVariant::Coop) => {
            if args.dtype != DType::F16 {
                return Err(Error::Unsupported(format!(
                    "attention '{label}': the cooperative-matrix kernel stores f16 only"
                )));
            }
            let shape = coop::supported(b.gpu().caps()).map_err(|why| {
                Error::Unsupported(format!(
                    "attention '{label}': the Coop variant needs cooperative matrices: {why}"
                ))
            })?;
            Some(shape)
        }
        None => coop_status(b.gpu(), choices, args.dtype).ok(),
    };
    let storage = b.gpu().caps().max_workgroup_storage;
    let kernel = shape
        .filter(|_| coop::HEAD_DIMS.contains(&args.head_dim))
        .and_then(|s| {
            let tiles = choices
                .coop_attention(args.head_dim)
                .or_else(|| coop::default_tiles(args.head_dim, storage))?;
            coop::kernel(s, args.head_dim, tiles, storage)
        });
    match kernel {
        Some(k) => record_kernel_scaled(b, label, args, Some(k), score_scale),
        None => {
            let tiles = choices.attention(args.head_dim, args.dtype);
            record_portable(b, label, args, tiles, score_scale)
        }
    }
}

/// Records the portable kernel at `tiles` (its default for the head size when `None`).
fn record_portable(
    b: &mut PlanBuilder,
    label: &str,
    args: &AttentionArgs,
    tiles: Option<Tiles>,
    score_scale: f32,
) -> Result<()> {
    let caps = b.gpu().caps();
    let Some(tiles) = tiles else {
        return record_kernel_scaled(b, label, args, None, score_scale);
    };
    if !HEAD_DIMS.contains(&args.head_dim) || args.dtype == DType::F16 && !caps.f16 {
        // Argument errors are `record_kernel`'s to name.
        return record_kernel_scaled(b, label, args, None, score_scale);
    }
    if !tiles.fits(args.head_dim, caps) {
        return Err(misfit(args.head_dim, tiles, caps));
    }
    let k = kernel(caps, args.dtype, args.head_dim, tiles);
    record_kernel_scaled(b, label, args, Some(k), score_scale)
}

/// Why the portable kernel at `tiles` does not fit the device.
fn misfit(head_dim: u32, tiles: Tiles, caps: &Capabilities) -> Error {
    Error::Unsupported(format!(
        "attention {}: needs {} bytes of workgroup memory and {} invocations, the device \
         has {} and {}",
        tiles.name(),
        tiles.bytes(head_dim, reduce_for(head_dim, caps)),
        tiles.invocations(head_dim),
        caps.max_workgroup_storage,
        caps.max_invocations
    ))
}

/// Whether the automatic choice takes the tensor-core kernel for `dtype` on this device
/// under `choices`, with its shape, or why not (`ops::coop::status`).
pub fn coop_status(
    gpu: &Gpu,
    choices: &Choices,
    dtype: DType,
) -> std::result::Result<Shape, String> {
    let verdict = choices.attention_check.as_ref();
    coop_mode::status(choices.coop, verdict, gpu.caps(), dtype, coop::supported)
}

/// Runs the tensor-core kernel at its untuned tiles on `coop::CHECKS` for every head size
/// and compares with `reference`.
pub fn self_check(gpu: &Arc<Gpu>, shape: Shape) -> Result<()> {
    let n_heads = 2u32;
    let storage = gpu.caps().max_workgroup_storage;
    // Head sizes the device's workgroup memory cannot tile stay on the portable kernel
    // (`record` does not offer them the tensor-core one).
    let kernel_for = |head_dim: u32| {
        coop::default_tiles(head_dim, storage)
            .and_then(|tiles| coop::kernel(shape, head_dim, tiles, storage))
    };
    // Compiled together first: on several threads where the machine has the cores.
    let kernels: Vec<Kernel> = coop::HEAD_DIMS
        .iter()
        .filter_map(|&d| kernel_for(d))
        .collect();
    runtime::pipeline::prepare(gpu, &kernels)?;
    for (i, check) in coop::CHECKS.iter().enumerate() {
        for &head_dim in &coop::HEAD_DIMS {
            let case = PackedCase {
                lens: check.lens,
                key_lens: check.key_lens,
                n_heads,
                head_dim,
                window: check.window,
                dtype: DType::F16,
            };
            let h = (n_heads * head_dim) as usize;
            let qkv = f16_values(case.rows() * 3 * h, 31 + i as u64 + head_dim as u64, 1.0);
            let Some(kernel) = kernel_for(head_dim) else {
                continue;
            };
            let got = run_packed(gpu, &Choices::default(), &case, &qkv, None, Some(kernel))?;
            let (_, cu) = RunSizes::packed(case.lens);
            let want = reference_keys(&qkv, &cu, case.key_lens, n_heads, head_dim, case.window);
            let tol = (coop::CHECK_ATOL, coop::CHECK_RTOL);
            compare(&got, &want, tol, |j| format!("out[{}, {}]", j / h, j % h))
                .map_err(|e| named(format_args!("attention self-check {case:?}"), e))?;
        }
    }
    Ok(())
}

#[doc(hidden)]
/// One attention problem over packed sequences (`lens`), for `run_packed`.
#[derive(Debug, Clone, Copy)]
pub struct PackedCase<'a> {
    pub lens: &'a [u32],
    /// Keys per sequence (`AttentionArgs::key_lens`), when limited.
    pub key_lens: Option<&'a [u32]>,
    pub n_heads: u32,
    pub head_dim: u32,
    pub window: Option<u32>,
    pub dtype: DType,
}

impl PackedCase<'_> {
    /// Tokens of the batch.
    pub fn rows(&self) -> usize {
        self.lens.iter().map(|&l| l as usize).sum()
    }
}

#[doc(hidden)]
/// Runs `case` on the GPU over `qkv` ([T, 3H] values, stored as `case.dtype`) with
/// `kernel`, or with what `variant` and `choices` choose when `kernel` is `None`, and returns
/// the output
/// [T, H]. The plan has two rows and two sequences of spare capacity, as real plans have.
/// The tensor-core self-check and the kernel tests run their cases through it.
pub fn run_packed(
    gpu: &Arc<Gpu>,
    choices: &Choices,
    case: &PackedCase,
    qkv: &[f32],
    variant: Option<AttentionVariant>,
    kernel: Option<Kernel>,
) -> Result<Vec<f32>> {
    let (sizes, cu) = RunSizes::packed(case.lens);
    let (t, h) = (sizes.rows as u64, (case.n_heads * case.head_dim) as u64);
    let es = case.dtype.size();
    let mut b = PlanBuilder::new(gpu.clone());
    let args = AttentionArgs {
        qkv: b.input("qkv", (t + 2) * 3 * h * es),
        cu_seqlens: b.input("cu_seqlens", (cu.len() as u64 + 2) * 4),
        key_lens: case
            .key_lens
            .map(|_| b.input("key_lens", (case.lens.len() as u64 + 2) * 4)),
        out: b.output("out", (t + 2) * h * es),
        n_heads: case.n_heads,
        head_dim: case.head_dim,
        window: case.window,
        dtype: case.dtype,
        variant,
    };
    match kernel {
        Some(k) => record_kernel(&mut b, "attention check", &args, Some(k))?,
        None => record(&mut b, choices, "attention check", &args)?,
    }
    let mut plan = b.build()?;
    plan.write(args.qkv, &case.dtype.encode(qkv))?;
    plan.write(args.cu_seqlens, bytemuck::cast_slice(&cu))?;
    if let (Some(t), Some(k)) = (args.key_lens, case.key_lens) {
        plan.write(t, bytemuck::cast_slice(k))?;
    }
    plan.run(&sizes)?;
    Ok(case.dtype.decode(&plan.read(args.out, 0, t * h * es)?))
}

/// Records one attention step with `kernel_override` (a build of the portable or the
/// tensor-core shader, the emulated one included: same bindings, parameters and dispatch),
/// or the portable kernel at its default tiles; `args.variant` is ignored.
pub fn record_kernel(
    b: &mut PlanBuilder,
    label: &str,
    args: &AttentionArgs,
    kernel_override: Option<Kernel>,
) -> Result<()> {
    record_kernel_scaled(b, label, args, kernel_override, 1.0)
}

/// `record_kernel` with the scores multiplied by `score_scale` (`record_scaled`).
fn record_kernel_scaled(
    b: &mut PlanBuilder,
    label: &str,
    args: &AttentionArgs,
    kernel_override: Option<Kernel>,
    score_scale: f32,
) -> Result<()> {
    let &AttentionArgs {
        qkv,
        cu_seqlens,
        key_lens,
        out,
        n_heads,
        head_dim,
        window,
        dtype,
        variant: _,
    } = args;
    let op = Op::new("attention", label);
    op.within("n_heads", n_heads, 1, u32::MAX)?;
    if !HEAD_DIMS.contains(&head_dim) {
        return Err(op.err("head_dim", format_args!("one of {HEAD_DIMS:?}"), head_dim));
    }
    let caps = b.gpu().caps().clone();
    op.dtype(&caps, dtype)?;
    let kernel = match kernel_override {
        Some(k) => k,
        None => {
            let tiles = Tiles::default_for(head_dim, &caps);
            if !tiles.fits(head_dim, &caps) {
                return Err(misfit(head_dim, tiles, &caps));
            }
            kernel(&caps, dtype, head_dim, tiles)
        }
    };
    let br = query_rows(&kernel)?;
    let hidden = n_heads as u64 * head_dim as u64;
    let qkv_rows = b.bytes(qkv) / (3 * hidden * dtype.size());
    op.bytes(b, "out", out, qkv_rows * hidden * dtype.size())?;
    let row_capacity = u32::try_from(qkv_rows).unwrap_or(u32::MAX);
    let max_segments =
        u32::try_from((b.bytes(cu_seqlens) / 4).saturating_sub(1)).unwrap_or(u32::MAX);
    let h4 = u32::try_from(hidden / 4)
        .map_err(|_| op.err("n_heads * head_dim", "under 2^34", hidden))?;
    let params = AttentionParams {
        n_heads,
        segments: 0,
        qkv_stride: 3 * h4,
        out_stride: h4,
        windowed: u32::from(window.is_some()),
        window: window.unwrap_or(0).min(WINDOW_CLAMP),
        scale: (std::f64::consts::LOG2_E * score_scale as f64 / (head_dim as f64).sqrt()) as f32,
        rows: 0,
        key_limited: u32::from(key_lens.is_some()),
    };
    if let Some(k) = key_lens {
        // One count per sequence that cu_seqlens can hold.
        op.bytes(b, "key_lens", k, max_segments as u64 * 4)?;
    }
    let max_dim = caps.max_workgroups_per_dim;
    b.step(
        label,
        kernel,
        // Without key lengths the binding reads cu_seqlens again, and the kernel ignores it.
        &[qkv, cu_seqlens, key_lens.unwrap_or(cu_seqlens), out],
        move |s: &RunSizes| {
            let segments = s.segments.min(max_segments);
            let p = AttentionParams {
                segments,
                rows: s.rows.min(row_capacity),
                ..params
            };
            if s.rows == 0 || segments == 0 || s.max_segment == 0 {
                return Launch::new(&p, [0, 0, 0]);
            }
            let pairs = n_heads.saturating_mul(segments);
            let g = runtime::grid(pairs, max_dim);
            Launch::new(&p, [s.max_segment.div_ceil(br), g[0], g[1]])
        },
    )
}

/// (query, key) pairs the mask allows: `sum_s sum_i |{j in s : |i - j| <= w}|` (or `S^2`).
pub fn allowed_pairs(cu_seqlens: &[u32], window: Option<u32>) -> u64 {
    cu_seqlens
        .windows(2)
        .map(|s| {
            let len = s[1].saturating_sub(s[0]) as u64;
            match window {
                None => len * len,
                Some(w) => (0..len)
                    .map(|i| (i + w as u64).min(len - 1) + 1 - i.saturating_sub(w as u64))
                    .sum(),
            }
        })
        .sum()
}

/// The CPU reference in f64: `out [T, H]` for `qkv [T, 3H]` (values as the GPU holds them).
/// A query without allowed keys gives zeros.
pub fn reference(
    qkv: &[f32],
    cu_seqlens: &[u32],
    n_heads: u32,
    head_dim: u32,
    window: Option<u32>,
) -> Vec<f64> {
    reference_keys(qkv, cu_seqlens, None, n_heads, head_dim, window)
}

/// `reference` where sequence s attends only to its first `key_lens[s]` rows (when given).
pub fn reference_keys(
    qkv: &[f32],
    cu_seqlens: &[u32],
    key_lens: Option<&[u32]>,
    n_heads: u32,
    head_dim: u32,
    window: Option<u32>,
) -> Vec<f64> {
    let (nh, d) = (n_heads as usize, head_dim as usize);
    let h = nh * d;
    let rows = cu_seqlens.last().copied().unwrap_or(0) as usize;
    let mut out = vec![0.0f64; rows * h];
    let scale = 1.0 / (d as f64).sqrt();
    let at = |row: usize, block: usize, head: usize, c: usize| {
        qkv[row * 3 * h + block * h + head * d + c] as f64
    };
    let mut scores = Vec::new();
    for (seq, s) in cu_seqlens.windows(2).enumerate() {
        let (start, end) = (s[0] as usize, s[1] as usize);
        let keys_end = key_lens.map_or(end, |k| end.min(start + k[seq] as usize));
        for head in 0..nh {
            for i in start..end {
                let allowed = |j: usize| window.is_none_or(|w| i.abs_diff(j) <= w as usize);
                scores.clear();
                for j in (start..keys_end).filter(|&j| allowed(j)) {
                    let dot: f64 = (0..d).map(|c| at(i, 0, head, c) * at(j, 1, head, c)).sum();
                    scores.push((j, dot * scale));
                }
                let Some(max) = scores.iter().map(|x| x.1).reduce(f64::max) else {
                    continue;
                };
                let total: f64 = scores.iter().map(|x| (x.1 - max).exp()).sum();
                for &(j, sc) in &scores {
                    let w = (sc - max).exp() / total;
                    for c in 0..d {
                        out[i * h + head * d + c] += w * at(j, 2, head, c);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_tiles_fit_the_workgroup_memory() {
        assert_eq!(key_tile(64, 65536), 16);
        assert_eq!(key_tile(16, 65536), 64);
        assert_eq!(key_tile(64, 4096), 8);
        let caps = Capabilities {
            max_workgroup_storage: 32768,
            max_invocations: 1024,
            subgroups: true,
            subgroup_min_size: 4,
            ..Default::default()
        };
        for d in HEAD_DIMS {
            let t = Tiles::default_for(d, &caps);
            assert_eq!(t.invocations(d), 128, "d {d}");
            assert_eq!(t.bytes(d, Reduce::Subgroup), 8192, "d {d}");
            assert!(t.fits(d, &caps));
        }
        // Rows of four lanes summed through workgroup memory where subgroups are narrower.
        let narrow = Capabilities {
            subgroup_min_size: 2,
            ..caps.clone()
        };
        assert_eq!(reduce_for(64, &narrow), Reduce::Workgroup);
        assert_eq!(reduce_for(16, &narrow), Reduce::Subgroup);
        let name = kernel(&narrow, DType::F32, 64, Tiles { br: 32, bc: 16 }).name();
        assert!(name.contains("LANES=4,SHARED_SUMS=1"), "{name}");
        let name = kernel(&caps, DType::F16, 32, Tiles { br: 64, bc: 32 }).name();
        assert!(name.contains("LANES=2,SUBGROUP=1"), "{name}");
        // 128 rows of four lanes are more invocations than a workgroup takes.
        assert!(!Tiles { br: 128, bc: 16 }.fits(64, &caps));
        assert_eq!(fitting(64, &caps).len(), 5);
    }

    #[test]
    fn allowed_pairs_count_the_band() {
        assert_eq!(super::allowed_pairs(&[0, 3, 8], None), 9 + 25);
        // Length 5, window 1: 2 + 3 + 3 + 3 + 2.
        assert_eq!(super::allowed_pairs(&[0, 5], Some(1)), 13);
        assert_eq!(super::allowed_pairs(&[0, 5], Some(100)), 25);
    }
}
