//! A desktop application that owns its wgpu device (for its own rendering, say) and lends it
//! to wgbert: the encoder runs on the app's device and queue, from a worker thread.
//!
//! cargo run --release --example desktop -- [--model ID|DIR]

use std::sync::Arc;

use anyhow::{Context, Result};
use wgbert::encoder::{EmbedPooling, Encoder, LoadOptions};
use wgbert::runtime::Gpu;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let model = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| "answerdotai/ModernBERT-base".into());

    // The application's own device: its own needs (a label here; textures, limits...) merged
    // with what wgbert's fastest kernels want on this adapter (f16, subgroups, tensor cores,
    // timestamps, the adapter's buffer and workgroup limits).
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .context("no adapter")?;
    let app_needs = wgpu::DeviceDescriptor {
        label: Some("desktop app"),
        ..Default::default()
    };
    let desc = wgbert::runtime::device_descriptor(&adapter, &app_needs);
    let (device, queue) = pollster::block_on(adapter.request_device(&desc))?;
    // The app keeps its own device-lost callback; it tells wgbert when it fires.
    let gpu = Gpu::from_wgpu(device.clone(), queue.clone(), Some(&adapter));
    let health = gpu.clone();
    device.set_device_lost_callback(move |reason, message| {
        health
            .health()
            .fail(format!("lost ({reason:?}): {message}"));
    });
    // What the device lacks for wgbert's fast kernels, if anything, for the app to show.
    for line in gpu.shortfalls() {
        eprintln!("wgbert: {line}");
    }

    let encoder = Arc::new(Encoder::load_on(gpu, &model, &LoadOptions::default())?);

    // The app keeps using its device while a worker embeds.
    let worker = {
        let encoder = encoder.clone();
        std::thread::spawn(move || encoder.embed(&["notes from the app"], EmbedPooling::Mean, true))
    };
    let _app_buffer = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app's own buffer"),
        size: 1024,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let v = worker
        .join()
        .map_err(|_| anyhow::anyhow!("worker panicked"))??;
    println!(
        "embedded on the app's device: {} dims, first {:?}",
        v[0].vectors[0].len(),
        &v[0].vectors[0][..4]
    );
    Ok(())
}
