//! `wgbert info`: every adapter with its backend, driver, type, features and key limits.

use wgbert::runtime::{AdapterReport, list_adapters};

pub fn run(backend: Option<&str>, json: bool) -> anyhow::Result<()> {
    let adapters = list_adapters(backend);
    if json {
        println!("{}", serde_json::to_string_pretty(&adapters)?);
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
}
