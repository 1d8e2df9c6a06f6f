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

    // The application's own device: it decides features and limits. wgbert uses what it gets
    // (f16 only when the app enabled SHADER_F16).
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter =
        pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
            .context("no adapter")?;
    let features = adapter.features() & wgpu::Features::SHADER_F16;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("desktop app"),
        required_features: features,
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;

    let gpu = Gpu::from_wgpu(device.clone(), queue.clone(), Some(&adapter));
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
