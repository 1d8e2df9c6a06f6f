//! `wgbert info`: every adapter with its backend, driver, type, features and key limits, and
//! the f16 kernels it would run (the tensor-core ones only after their self-check passed
//! there, which `info` runs).

use wgbert::ops::tune::{self, Cache, Choice, Mode};
use wgbert::ops::{DType, F16Kernels, f16_kernels};
use wgbert::runtime::{AdapterReport, Gpu, GpuOptions, list_adapters};

/// The tile configuration per tuned op of one adapter, as the cache holds it (`info` never
/// tunes: `wgbert tune` or a first model load does).
fn tiles(a: &AdapterReport) -> Vec<Choice> {
    let opts = GpuOptions {
        backend: Some(a.backend.to_lowercase()),
        adapter: Some(a.name.clone()),
    };
    let Ok(gpu) = Gpu::new(&opts) else {
        return Vec::new();
    };
    let cache = Cache::default_location();
    let mut out = Vec::new();
    for dtype in [DType::F32, DType::F16] {
        if dtype == DType::F16 && !gpu.caps().f16 {
            continue;
        }
        if let Ok(c) = tune::ensure_tiled(&gpu, dtype, &cache, Mode::Lookup, None) {
            out.extend(c);
        }
        if dtype == DType::F16 {
            if let Ok(c) = tune::ensure_coop(&gpu, &cache, Mode::Lookup, None) {
                out.extend(c);
            }
        }
        let d = [super::tune::MODERNBERT_HEAD_DIM];
        if let Ok(c) = tune::ensure_attention(&gpu, dtype, &d, &cache, Mode::Lookup, None) {
            out.extend(c);
        }
        if dtype == DType::F16 {
            if let Ok(c) = tune::ensure_coop_attention(&gpu, &d, &cache, Mode::Lookup, None) {
                out.extend(c);
            }
        }
    }
    out
}

/// The f16 kernels of one adapter; failures (no device, `WGBERT_COOP=1` unmet) become the
/// `coop_reason`.
fn kernels(a: &AdapterReport) -> F16Kernels {
    let opts = GpuOptions {
        backend: Some(a.backend.to_lowercase()),
        adapter: Some(a.name.clone()),
    };
    let got = Gpu::new(&opts).and_then(|gpu| f16_kernels(&gpu));
    got.unwrap_or_else(|e| F16Kernels {
        matmul: "matmul".into(),
        attention: "attention".into(),
        coop_reason: Some(e.to_string()),
    })
}

pub fn run(backend: Option<&str>, json: bool) -> anyhow::Result<()> {
    let adapters = list_adapters(backend);
    if json {
        let mut out = Vec::new();
        for a in &adapters {
            let mut v = serde_json::to_value(a)?;
            let k = kernels(a);
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "f16_kernels".into(),
                    serde_json::json!({"matmul": k.matmul, "attention": k.attention}),
                );
                if let Some(r) = k.coop_reason {
                    o.insert("coop_reason".into(), r.into());
                }
                o.insert("tiles".into(), serde_json::to_value(tiles(a))?);
            }
            out.push(v);
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
        print_adapter(i, a);
    }
    Ok(())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn print_adapter(i: usize, a: &AdapterReport) {
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
    let k = kernels(a);
    println!("    f16 kernels:         {}, {}", k.matmul, k.attention);
    if let Some(r) = k.coop_reason {
        println!("    no tensor cores:     {r}");
    }
    for c in tiles(a) {
        println!(
            "    tiles {} {} {}: {} ({})",
            c.op, c.class, c.dtype, c.config, c.source
        );
    }
}
