//! `wgbert kernels [--compile] [--json] [--all]`: every kernel build the engine can make on
//! the chosen adapter (`ops::catalog`), listed, or with `--compile` created one pipeline at
//! a time with its name on stderr just before, so that what a driver prints while compiling
//! it (its statistics) follows its name. Nothing runs on the device: no dispatch, no
//! self-check, no tuning, and no cache is read or written (the device is made without the
//! pipeline cache), so it works on drivers whose submissions do nothing (Mesa's drm-shim).
//! Builds that fail to compile or validate are all named at the end, and the command exits 1.

use anyhow::{Result, bail};
use clap::Args;
use wgbert::ops::catalog::{self, Listed};
use wgbert::runtime::{Gpu, GpuOptions, pipeline};

use super::Global;

#[derive(Args, Debug)]
pub struct KernelsArgs {
    /// Create each build's pipeline (the driver compiles it), one at a time.
    #[arg(long)]
    pub compile: bool,
    /// One JSON array, an object per build: name, family, default, config, fragment (for
    /// tensor-core builds), unused (why the engine never runs a build listed only to be
    /// compiled), ok and error (with --compile).
    #[arg(long)]
    pub json: bool,
    /// Every activation, bias and load width of the matmuls, not only ModernBERT's.
    #[arg(long)]
    pub all: bool,
}

/// The workgroup size and the bytes of workgroup memory a build declares, as naga reads
/// its WGSL: the same on every driver (some drivers' statistics leave shared memory out).
fn workgroup(l: &Listed) -> Option<([u32; 3], u64)> {
    use wgpu::naga;
    let module = naga::front::wgsl::parse_str(&l.kernel.wgsl().ok()?).ok()?;
    let size = module.entry_points.first()?.workgroup_size;
    let bytes = module
        .global_variables
        .iter()
        .filter(|(_, g)| g.space == naga::AddressSpace::WorkGroup)
        .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()) as u64)
        .sum();
    Some((size, bytes))
}

/// One build's line of the report.
fn row(l: &Listed, compiled: Option<&std::result::Result<(), String>>) -> serde_json::Value {
    let mut v = serde_json::json!({
        "name": l.kernel.name(),
        "family": l.family,
        "default": l.default,
    });
    if let Some((size, bytes)) = workgroup(l) {
        v["workgroup_size"] = serde_json::json!(size);
        v["workgroup_bytes"] = bytes.into();
    }
    if let Some(c) = &l.config {
        v["config"] = c.as_str().into();
    }
    if let Some(f) = &l.fragment {
        v["fragment"] = f.as_str().into();
    }
    if let Some(why) = l.unused {
        v["unused"] = why.into();
    }
    if let Some(r) = compiled {
        v["ok"] = r.is_ok().into();
        if let Err(e) = r {
            v["error"] = e.as_str().into();
        }
    }
    v
}

pub fn run(g: &Global, a: &KernelsArgs) -> Result<()> {
    let opts = g.load_options()?;
    // No pipeline cache: nothing is read from or written to the cache directory.
    let gpu = Gpu::new(&GpuOptions {
        pipeline_cache_dir: None,
        ..opts.gpu
    })?;
    let info = gpu.info();
    eprintln!(
        "adapter: {} ({:?}, {} {})",
        info.name, info.backend, info.driver, info.driver_info
    );
    let listed = catalog::for_adapter(gpu.caps(), a.all);
    let n = listed.len();
    let mut failed = Vec::new();
    let mut rows = Vec::with_capacity(n);
    for (i, l) in listed.iter().enumerate() {
        let name = l.kernel.name();
        let compiled = a.compile.then(|| {
            eprintln!("kernel {}/{n}: {name}", i + 1);
            pipeline::pipeline(&gpu, &l.kernel)
                .map(drop)
                .map_err(|e| e.to_string())
        });
        if let Some(Err(e)) = &compiled {
            eprintln!("kernel {}/{n} failed: {e}", i + 1);
            failed.push(format!("{name}: {e}"));
        }
        rows.push(row(l, compiled.as_ref()));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            let ok = match r["ok"].as_bool() {
                Some(true) => "ok",
                Some(false) => "FAILED",
                None => "",
            };
            let default = match (r["default"] == true, r["unused"].is_string()) {
                (true, _) => "default",
                (_, true) => "unused",
                _ => "",
            };
            println!(
                "{:<16} {:<8} {:<8} {:<7} {:<6} {}",
                s("family"),
                s("config"),
                s("fragment"),
                default,
                ok,
                s("name")
            );
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {n} kernels failed to compile on '{}':\n{}",
            failed.len(),
            info.name,
            failed.join("\n")
        );
    }
    if a.compile {
        eprintln!("compiled {n} kernels on '{}'", info.name);
    }
    Ok(())
}
