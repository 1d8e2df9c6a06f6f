//! `wgbert bench --kernels`: matmul and attention sweeps on ModernBERT-base shapes (and a
//! 4096^3 square matmul), timed on the GPU with timestamp queries where available (wall time
//! otherwise; `ops::timing`), reported in TFLOP/s. `--sweep` also times every candidate tile
//! configuration (`ops::tune`) on each matmul shape: the tiled matmul's, the tensor-core
//! matmul's where the adapter has it, and every candidate tile of the portable and (where it
//! runs) tensor-core attention kernels.
//!
//! Every shape is fitted to the adapter's buffer limits before it allocates: its rows (or
//! sequences) are halved until each buffer fits (`ops::timing::fit_*`), and a case that still
//! cannot be created is skipped. Both are listed on stderr and in the JSON (`shrunk`,
//! `skipped`); the sweep goes on. `WGBERT_BENCH_SMALL=1` uses small shapes instead.

use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use wgbert::encoder::LoadOptions;
use wgbert::ops::attention;
use wgbert::ops::choice::Choices;
use wgbert::ops::matmul::{self, Epilogue, MatmulVariant, tiled};
use wgbert::ops::tune;
use wgbert::ops::{DType, timing};
use wgbert::runtime::{Capabilities, Gpu, Kernel};

use super::bench::too_large;

/// What fitting the cases to the adapter changed.
#[derive(Default)]
struct Fitting {
    /// Shapes run smaller than asked, and why.
    shrunk: Vec<String>,
    /// Cases not run, and why.
    skipped: Vec<String>,
}

impl Fitting {
    fn shrink(&mut self, what: String) {
        eprintln!("shrunk: {what}");
        self.shrunk.push(what);
    }

    fn skip(&mut self, what: String) {
        eprintln!("skipped: {what}");
        self.skipped.push(what);
    }

    /// Records a case's TFLOP/s, or skips it when a buffer is over the adapter's limits
    /// after all (other errors end the run).
    fn record(
        &mut self,
        cases: &mut Vec<(String, f64)>,
        name: String,
        result: Result<f64>,
    ) -> Result<()> {
        match result {
            Ok(tf) => cases.push((name, tf)),
            Err(e) if too_large(&e) => self.skip(format!("{name}: {e:#}")),
            Err(e) => return Err(e.context(name)),
        }
        Ok(())
    }

    /// The matmul shapes `(name, (t, k, n), epilogue)` with their rows halved to fit `caps`,
    /// named by the rows they run (a square one only when shrunk: `matmul 4096^3` stays).
    fn matmuls(
        &mut self,
        caps: &Capabilities,
        dt: DType,
        wanted: Vec<MatmulShape>,
    ) -> Vec<MatmulShape> {
        let mut out = Vec::new();
        for (name, (t, k, n), ep) in wanted {
            let full = timing::check_buffers(caps, &timing::matmul_buffers(dt, (t, k, n), ep));
            match (timing::fit_matmul_rows(caps, dt, (t, k, n), ep), full) {
                (Some(rows), full) => {
                    if let Err(why) = full {
                        self.shrink(format!("{name}: T={t} -> T={rows} ({why})"));
                    }
                    let square = t == k && k == n;
                    let named = match square && rows == t {
                        true => name,
                        false => format!("{name} T={rows}"),
                    };
                    out.push((named, (rows, k, n), ep));
                }
                (None, full) => self.skip(format!("{name} T={t}: {}", reason(full))),
            }
        }
        out
    }

    /// The attention shapes `(name, (seqs, len), window)` with their sequences halved to
    /// fit `caps`, named by the sequences they run.
    fn attentions(
        &mut self,
        caps: &Capabilities,
        dt: DType,
        heads: (u32, u32),
        wanted: &[(&str, (u32, u32), Option<u32>)],
    ) -> Vec<(String, (u32, u32), Option<u32>)> {
        let mut out = Vec::new();
        for &(what, (seqs, len), window) in wanted {
            let buffers = timing::attention_buffers(dt, (seqs, len), heads);
            let full = timing::check_buffers(caps, &buffers);
            match (
                timing::fit_attention_seqs(caps, dt, (seqs, len), heads),
                full,
            ) {
                (Some(n), full) => {
                    if let Err(why) = full {
                        self.shrink(format!("{what} {len} x {seqs} -> {len} x {n} ({why})"));
                    }
                    out.push((format!("{what} {len} x {n}"), (n, len), window));
                }
                (None, full) => self.skip(format!("{what} {len} x {seqs}: {}", reason(full))),
            }
        }
        out
    }
}

type MatmulShape = (String, (u32, u32, u32), Epilogue);

fn reason(r: wgbert::Result<()>) -> String {
    r.err()
        .map_or_else(|| "does not fit".into(), |e| e.to_string())
}

const REPS: usize = 5;

/// How a matmul case picks its kernel.
#[derive(Clone, Copy)]
enum Pick {
    /// As the model would (`matmul::record`).
    Auto,
    /// The tiled kernel at this configuration.
    Tiled(tiled::Config),
    /// The tensor-core kernel at this configuration.
    Coop(matmul::coop::Config),
}

fn matmul_case(
    gpu: &Arc<Gpu>,
    choices: &Choices,
    dt: DType,
    (t, k, n): (u32, u32, u32),
    epilogue: Epilogue,
    pick: Pick,
) -> Result<f64> {
    let (variant, build) = match pick {
        Pick::Auto => (None, None),
        Pick::Tiled(c) => {
            let kernel = tiled::build(gpu.caps(), dt, epilogue, false, c, k);
            (None, Some((kernel, tiled::tile(c, epilogue))))
        }
        Pick::Coop(c) => {
            let shape = matmul::coop::supported(gpu.caps()).map_err(anyhow::Error::msg)?;
            let kernel = matmul::coop::kernel(shape, c, epilogue, false, k);
            let tile = matmul::coop::tile(shape, c, epilogue);
            (Some(MatmulVariant::Coop), Some((kernel, tile)))
        }
    };
    let (mut plan, sizes) =
        timing::matmul_plan(gpu, choices, dt, (t, k, n), epilogue, variant, build)?;
    let secs = timing::seconds(gpu, &mut plan, &sizes, REPS)?;
    Ok(2.0 * t as f64 * k as f64 * n as f64 / secs / 1e12)
}

/// Attention over `seqs` sequences of `len` tokens (12 heads of 64), with the automatic
/// choice of kernel, or the given build (`attention_kernel`).
fn attention_case(
    gpu: &Arc<Gpu>,
    choices: &Choices,
    dt: DType,
    (seqs, len): (u32, u32),
    window: Option<u32>,
    kernel: Option<Kernel>,
) -> Result<f64> {
    let (heads, d) = (12u32, 64u32);
    let (mut plan, sizes) =
        timing::attention_plan(gpu, choices, dt, (seqs, len), (heads, d), window, kernel)?;
    let secs = timing::seconds(gpu, &mut plan, &sizes, REPS)?;
    let cu: Vec<u32> = (0..=seqs).map(|i| i * len).collect();
    let pairs = attention::allowed_pairs(&cu, window) as f64;
    Ok(4.0 * pairs * d as f64 * heads as f64 / secs / 1e12)
}

pub fn run(
    gpu: &Arc<Gpu>,
    opts: &LoadOptions,
    dtype: Option<DType>,
    json_out: bool,
    sweep: bool,
) -> Result<()> {
    let dt = dtype.unwrap_or(if gpu.caps().f16 {
        DType::F16
    } else {
        DType::F32
    });
    // What a model load does first: the tensor-core self-checks (f16) and the tiles of the
    // kernels it runs, so that the automatic choice below is the model's.
    let start = Choices::new(opts.coop);
    let d = super::tune::MODERNBERT_HEAD_DIM;
    let mode = tune::Mode::Ensure;
    let chosen = tune::choose(gpu, start, &opts.tune, dt, d, mode, None)?;
    let choices = &chosen.choices;
    let small = opts.tune.small_shapes;
    let t = if small { 256 } else { 32768 };
    let act = wgbert::ops::Activation::GeluErf;
    let mut cases: Vec<(String, f64)> = Vec::new();
    let mut fitting = Fitting::default();
    let matmuls = [
        ("Wqkv 768->2304", t, 768, 2304, Epilogue::None),
        ("attn.Wo 768->768 +res", t, 768, 768, Epilogue::Residual),
        ("Wi 768->2304 geglu", t, 768, 2304, Epilogue::GeGlu(act)),
        ("mlp.Wo 1152->768 +res", t, 1152, 768, Epilogue::Residual),
    ];
    let sq = if small { 256 } else { 4096 };
    let mut wanted: Vec<MatmulShape> = matmuls
        .iter()
        .map(|&(name, t, k, n, ep)| (format!("matmul {name}"), (t, k, n), ep))
        .collect();
    wanted.push((format!("matmul {sq}^3"), (sq, sq, sq), Epilogue::None));
    let shapes = fitting.matmuls(gpu.caps(), dt, wanted);
    let (s512, s8k) = if small { (4, 1) } else { (64, 4) };
    let long = if small { 1024 } else { 8192 };
    let heads = (12, super::tune::MODERNBERT_HEAD_DIM);
    let wanted = [
        ("attention global", (s512, 512), None),
        ("attention global", (s8k, long), None),
        ("attention window 64,", (s8k, long), Some(64)),
    ];
    let attentions = fitting.attentions(gpu.caps(), dt, heads, &wanted);
    // The table streams: each result is printed when it is measured (a software adapter
    // takes minutes per base shape); JSON comes whole at the end.
    let mut table = (!json_out).then(|| Table::start(gpu, dt));
    let mut record = |cases: &mut Vec<(String, f64)>, name: String, tf| -> Result<()> {
        fitting.record(cases, name, tf)?;
        if let Some(t) = table.as_mut() {
            t.print_new(cases);
        }
        Ok(())
    };
    for (name, shape, ep) in &shapes {
        let tf = matmul_case(gpu, choices, dt, *shape, *ep, Pick::Auto);
        record(&mut cases, name.clone(), tf)?;
    }
    if sweep {
        // Every candidate of the tiled kernel, and the tensor-core kernel where it runs.
        let mut picks: Vec<(String, Pick)> = tiled::fitting(gpu.caps())
            .into_iter()
            .map(|c| (format!("tiled {}", c.name()), Pick::Tiled(c)))
            .collect();
        if dt == DType::F16 {
            if let Ok(shape) = matmul::coop_status(gpu, choices, dt) {
                picks.extend(
                    matmul::coop::fitting(shape, gpu.caps())
                        .into_iter()
                        .map(|c| (format!("coop {}", c.name()), Pick::Coop(c))),
                );
            }
        }
        for (name, shape, ep) in &shapes {
            for (pick_name, pick) in &picks {
                let tf = matmul_case(gpu, choices, dt, *shape, *ep, *pick);
                record(&mut cases, format!("{name} [{pick_name}]"), tf)?;
            }
        }
    }
    for (name, shape, window) in &attentions {
        let tf = attention_case(gpu, choices, dt, *shape, *window, None);
        record(&mut cases, name.clone(), tf)?;
    }
    if sweep {
        // Every candidate tile of the portable kernel at ModernBERT's head size, and of the
        // tensor-core kernel where it runs.
        let d = super::tune::MODERNBERT_HEAD_DIM;
        let mut builds: Vec<(String, Kernel)> = attention::fitting(d, gpu.caps())
            .into_iter()
            .map(|t| {
                (
                    format!("portable {}", t.name()),
                    attention::kernel(gpu.caps(), dt, d, t),
                )
            })
            .collect();
        if dt == DType::F16 {
            if let Ok(shape) = attention::coop_status(gpu, choices, dt) {
                let storage = gpu.caps().max_workgroup_storage;
                for t in attention::coop::fitting(d, storage) {
                    if let Some(k) = attention::coop::kernel(shape, d, t, storage) {
                        builds.push((format!("coop {}", t.name()), k));
                    }
                }
            }
        }
        for (build, kernel) in &builds {
            for (name, shape, window) in &attentions {
                let k = Some(kernel.clone());
                let tf = attention_case(gpu, choices, dt, *shape, *window, k);
                record(&mut cases, format!("{name} [{build}]"), tf)?;
            }
        }
    }
    if json_out {
        let m: serde_json::Map<String, serde_json::Value> =
            cases.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        println!(
            "{}",
            json!({ "adapter": gpu.info().name, "dtype": format!("{dt:?}"), "tflops": m,
                    "shrunk": fitting.shrunk, "skipped": fitting.skipped })
        );
    }
    Ok(())
}

/// The readable output: a header line, then one line per result as it is measured.
struct Table {
    printed: usize,
}

impl Table {
    fn start(gpu: &Gpu, dt: DType) -> Table {
        println!(
            "adapter {} ({:?}), {dt:?}; TFLOP/s (GPU timestamps: {})",
            gpu.info().name,
            gpu.info().backend,
            gpu.caps().timestamps
        );
        Table { printed: 0 }
    }

    /// Prints the results not printed yet.
    fn print_new(&mut self, cases: &[(String, f64)]) {
        use std::io::Write;
        for (name, tf) in &cases[self.printed..] {
            // Software adapters run at GFLOP/s: three decimals of TFLOP/s would read 0.000.
            if *tf >= 0.1 {
                println!("  {name:<58} {tf:>9.3}");
            } else {
                println!("  {name:<58} {:>9.3} GFLOP/s", tf * 1e3);
            }
        }
        self.printed = cases.len();
        let _ = std::io::stdout().flush();
    }
}
