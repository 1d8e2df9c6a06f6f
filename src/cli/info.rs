//! `wgbert info`: every adapter with its backend, driver, type, features and key limits, the
//! f16 kernels it would run (the tensor-core ones only after their self-check passed there,
//! which `info` runs unless the cache holds its verdict), the tensor-core build of each
//! family a first run would take there once its check passes, or why none (the fragment
//! shape, subgroup size and tiles: `ops::catalog::tensor_cores`), the cached tiles, and the state of
//! the cache (its directory, whether verdicts were cached, the pipeline cache's size). Given
//! a model (`--model`), it loads it and reports the device memory it holds: at load (the
//! weights), and with the plans of its largest batch built, and how each tensor larger than
//! one storage binding is held in row pieces.

use std::sync::Arc;

use wgbert::encoder::LoadOptions;
use wgbert::ops::DType;
use wgbert::ops::catalog;
use wgbert::ops::choice::Choices;
use wgbert::ops::tune::{self, Choice, DeviceKey, F16Kernels, Mode, f16_kernels};
use wgbert::runtime::{AdapterReport, Gpu, GpuOptions, list_adapters};

use super::Global;

/// Device bytes of a loaded model: at load, and with its full-capacity plans built.
fn model_memory(g: &Global) -> anyhow::Result<serde_json::Value> {
    let enc = g.load()?;
    let at_load = enc.device_bytes()?;
    let load_memory = enc.memory();
    let cap = enc.reserve(enc.capacity())?;
    let at_capacity = enc.device_bytes()?;
    Ok(serde_json::json!({
        "model": g.model,
        "adapter": enc.gpu().info().name,
        "dtype": format!("{:?}", enc.dtype()).to_lowercase(),
        "max_storage_binding": enc.gpu().caps().max_storage_binding,
        "split": enc.weight_splits(),
        "capacity_tokens": cap,
        "at_load": { "total": at_load.total(), "weights": at_load.weights,
                     "peak_during_load": load_memory.peak },
        "at_capacity": { "total": at_capacity.total(), "weights": at_capacity.weights,
                         "activations": at_capacity.arena, "plans": at_capacity.plans,
                         "bytes_per_token": (at_capacity.total() - at_capacity.weights)
                             / cap.max(1) as u64 },
    }))
}

/// What `info` learns on one adapter's device.
struct Probe {
    kernels: F16Kernels,
    /// The tensor-core build of each family a first run takes once its self-check passes,
    /// or why there is none (`catalog::tensor_cores`).
    tensor_cores: serde_json::Value,
    tiles: Vec<Choice>,
    cache: serde_json::Value,
}

/// The device of one adapter, with the options' cache settings.
fn device(a: &AdapterReport, opts: &LoadOptions) -> wgbert::Result<Arc<Gpu>> {
    Gpu::new(&GpuOptions {
        backend: Some(a.backend.to_lowercase()),
        adapter: Some(a.name.clone()),
        ..opts.gpu.clone()
    })
}

/// The f16 kernels (failures, such as no device or `WGBERT_COOP=1` unmet, become the
/// `coop_reason`), the tile configuration per tuned op as the cache holds it (`info` never
/// tunes: `wgbert tune` or a first model load does), and the state of the caches.
fn probe(a: &AdapterReport, opts: &LoadOptions) -> Probe {
    let cache = opts.tune.cache();
    let gpu = match device(a, opts) {
        Ok(g) => g,
        Err(e) => {
            return Probe {
                kernels: F16Kernels {
                    matmul: "matmul".into(),
                    attention: "attention".into(),
                    coop_reason: Some(e.to_string()),
                },
                tensor_cores: serde_json::Value::Null,
                tiles: Vec::new(),
                cache: serde_json::Value::Null,
            };
        }
    };
    // Before the self-checks write theirs.
    let verdicts_cached = cache.has_verdicts(&DeviceKey::of(&gpu));
    let mut choices = Choices::new(opts.coop);
    let kernels = f16_kernels(&gpu, &mut choices, &cache).unwrap_or_else(|e| F16Kernels {
        matmul: "matmul".into(),
        attention: "attention".into(),
        coop_reason: Some(e.to_string()),
    });
    let mut tiles = Vec::new();
    let t = &opts.tune;
    let d = [super::tune::MODERNBERT_HEAD_DIM];
    for dtype in [DType::F32, DType::F16] {
        if dtype == DType::F16 && !gpu.caps().f16 {
            continue;
        }
        let c = &mut choices;
        tiles.extend(tune::ensure_tiled(&gpu, c, dtype, t, Mode::Lookup, None).unwrap_or_default());
        if dtype == DType::F16 {
            tiles.extend(tune::ensure_coop(&gpu, c, t, Mode::Lookup, None).unwrap_or_default());
        }
        let got = tune::ensure_attention(&gpu, c, dtype, &d, t, Mode::Lookup, None);
        tiles.extend(got.unwrap_or_default());
        if dtype == DType::F16 {
            let got = tune::ensure_coop_attention(&gpu, c, &d, t, Mode::Lookup, None);
            tiles.extend(got.unwrap_or_default());
        }
    }
    let pipelines = gpu.pipeline_cache_path().map(|p| {
        let bytes = std::fs::metadata(p).map(|m| m.len()).ok();
        serde_json::json!({"path": p, "bytes": bytes})
    });
    let cache = serde_json::json!({
        "dir": opts.tune.cache_dir,
        "tune_file": cache.path(),
        "verdicts_cached": verdicts_cached,
        "pipeline_cache": pipelines,
        "counters": gpu.counters(),
    });
    let tensor_cores = catalog::tensor_cores(gpu.caps())
        .into_iter()
        .map(|(family, build)| {
            let v = match build {
                Ok(b) => serde_json::json!({ "kernel": b }),
                Err(why) => serde_json::json!({ "none": why }),
            };
            (family.to_string(), v)
        })
        .collect::<serde_json::Map<_, _>>();
    Probe {
        kernels,
        tensor_cores: tensor_cores.into(),
        tiles,
        cache,
    }
}

pub fn run(g: &Global, json: bool) -> anyhow::Result<()> {
    let opts = g.load_options()?;
    let adapters = list_adapters(g.backend.as_deref());
    let model = match g.model_given {
        true => Some(model_memory(g)?),
        false => None,
    };
    if json {
        let mut out = Vec::new();
        for a in &adapters {
            let mut v = serde_json::to_value(a)?;
            let p = probe(a, &opts);
            let k = p.kernels;
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "f16_kernels".into(),
                    serde_json::json!({"matmul": k.matmul, "attention": k.attention}),
                );
                if let Some(r) = k.coop_reason {
                    o.insert("coop_reason".into(), r.into());
                }
                o.insert("tensor_cores".into(), p.tensor_cores);
                o.insert("tiles".into(), serde_json::to_value(p.tiles)?);
                o.insert("cache".into(), p.cache);
            }
            out.push(v);
        }
        // The model's memory goes with the adapter it was loaded on.
        if let Some(m) = model {
            let on = m["adapter"].clone();
            match out.iter_mut().find(|a| a["name"] == on) {
                Some(a) => a["model"] = m,
                None => out.push(serde_json::json!({ "name": on, "model": m })),
            }
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if adapters.is_empty() {
        anyhow::bail!(
            "no GPU adapter found; install a Vulkan driver (Linux without a GPU: \
             `apt-get install mesa-vulkan-drivers libvulkan1` for lavapipe)"
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        print_adapter(i, a, probe(a, &opts));
    }
    if let Some(m) = model {
        let mib = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as f64 / (1u64 << 20) as f64;
        println!(
            "model {} ({}) on {}: {:.1} MiB at load (weights {:.1} MiB); {:.1} MiB with its \
             {}-token plans ({} bytes per token besides the weights)",
            m["model"].as_str().unwrap_or(""),
            m["dtype"].as_str().unwrap_or(""),
            m["adapter"].as_str().unwrap_or(""),
            mib(&m["at_load"]["total"]),
            mib(&m["at_load"]["weights"]),
            mib(&m["at_capacity"]["total"]),
            m["capacity_tokens"],
            m["at_capacity"]["bytes_per_token"],
        );
        print_splits(&m);
    }
    Ok(())
}

/// One line per tensor held in row pieces: its bytes and the rows of each piece.
fn print_splits(m: &serde_json::Value) {
    let splits = m["split"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let limit = m["max_storage_binding"].as_u64().unwrap_or(0);
    if splits.is_empty() {
        println!("    every tensor fits one storage binding ({limit} bytes)");
        return;
    }
    println!("    in row pieces (storage binding {limit} bytes):");
    for s in splits {
        let rows: Vec<String> = s["pieces"]
            .as_array()
            .map(|p| p.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        println!(
            "    {}: {} bytes in {} pieces of {} rows",
            s["name"].as_str().unwrap_or(""),
            s["bytes"],
            rows.len(),
            rows.join(", ")
        );
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn print_adapter(i: usize, a: &AdapterReport, p: Probe) {
    let c = &a.capabilities;
    println!("[{i}] {} ({}, {})", a.name, a.backend, a.device_type);
    println!("    driver:            {} {}", a.driver, a.driver_info);
    println!("    shader-f16:        {}", yes(c.f16));
    if c.subgroups {
        println!(
            "    subgroups:         yes (size {}..{})",
            c.subgroup_min_size, c.subgroup_max_size
        );
    } else {
        println!("    subgroups:         no");
    }
    println!("    timestamp queries: {}", yes(c.timestamps));
    if c.coop_matrix.is_empty() {
        println!("    cooperative matrix: no");
    } else {
        let shapes: Vec<String> = c
            .coop_matrix
            .iter()
            .map(|s| format!("{}x{}x{} f16->{}", s.m, s.n, s.k, s.acc))
            .collect();
        println!("    cooperative matrix: {}", shapes.join(", "));
    }
    println!(
        "    max storage binding: {} MiB",
        c.max_storage_binding >> 20
    );
    println!("    max buffer:          {} MiB", c.max_buffer_size >> 20);
    println!(
        "    workgroup storage:   {} KiB",
        c.max_workgroup_storage >> 10
    );
    println!("    invocations/group:   {}", c.max_invocations);
    println!("    workgroups/dim:      {}", c.max_workgroups_per_dim);
    let k = p.kernels;
    println!("    f16 kernels:         {}, {}", k.matmul, k.attention);
    if let Some(r) = k.coop_reason {
        println!("    no tensor cores:     {r}");
    }
    if let Some(families) = p.tensor_cores.as_object() {
        for (family, v) in families {
            let what = match (v["kernel"].as_str(), v["none"].as_str()) {
                (Some(k), _) => k.to_string(),
                (_, Some(why)) => format!("none ({why})"),
                _ => continue,
            };
            println!("    tensor-core {family:<9} {what}");
        }
    }
    let c = &p.cache;
    let shown = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "none".into(),
        v => v.to_string(),
    };
    println!("    cache:               {}", shown(&c["dir"]));
    println!("    tuning file:         {}", shown(&c["tune_file"]));
    println!("    verdicts cached:     {}", shown(&c["verdicts_cached"]));
    let pc = &c["pipeline_cache"];
    if pc.is_null() {
        println!("    pipeline cache:      none");
    } else {
        let bytes = pc["bytes"]
            .as_u64()
            .map_or("absent".into(), |b| format!("{b} bytes"));
        println!("    pipeline cache:      {} ({bytes})", shown(&pc["path"]));
    }
    for c in p.tiles {
        println!(
            "    tiles {} {} {}: {} ({})",
            c.op, c.class, c.dtype, c.config, c.source
        );
    }
}
