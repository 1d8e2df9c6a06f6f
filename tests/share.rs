//! A host application's device lent to wgbert: the descriptor that merges wgbert's wants with
//! the host's, the shortfalls a borrowed device reports, and the host's callbacks left alone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::model_dir::model_dir;
use wgbert::encoder::{EmbedPooling, Encoder, LoadOptions};
use wgbert::ops::DType;
use wgbert::runtime::{Gpu, WANTED_FEATURES, device_descriptor};

fn adapter() -> wgpu::Adapter {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("tests need a GPU adapter (install mesa-vulkan-drivers)")
}

#[test]
fn the_descriptor_adds_wgberts_wants_to_the_hosts() {
    let adapter = adapter();
    let host_limits = wgpu::Limits {
        max_texture_dimension_2d: 4096,
        max_bind_groups: 5,
        ..Default::default()
    };
    let host = wgpu::DeviceDescriptor {
        label: Some("host app"),
        required_limits: host_limits,
        ..Default::default()
    };
    let desc = device_descriptor(&adapter, &host);
    assert_eq!(desc.label, Some("host app"));
    assert_eq!(
        desc.required_features,
        adapter.features() & WANTED_FEATURES,
        "every wanted feature the adapter has"
    );
    let have = adapter.limits();
    let got = &desc.required_limits;
    assert_eq!(
        got.max_storage_buffer_binding_size,
        have.max_storage_buffer_binding_size
    );
    assert_eq!(got.max_buffer_size, have.max_buffer_size);
    assert_eq!(
        got.max_compute_workgroup_storage_size,
        have.max_compute_workgroup_storage_size
    );
    assert_eq!(
        got.max_compute_invocations_per_workgroup,
        have.max_compute_invocations_per_workgroup
    );
    assert_eq!(
        got.max_texture_dimension_2d, 4096,
        "the host's own limits stay"
    );
    assert_eq!(got.max_bind_groups, 5);
    // The adapter grants it, and a Gpu on it has no shortfalls.
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("device");
    let gpu = Gpu::from_wgpu(device, queue, Some(&adapter));
    assert!(gpu.shortfalls().is_empty(), "{:?}", gpu.shortfalls());
    assert_eq!(
        gpu.caps().f16,
        adapter.features().contains(wgpu::Features::SHADER_F16)
    );
}

#[test]
fn a_bare_device_reports_what_it_lacks_and_still_loads() {
    let adapter = adapter();
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor::default()))
            .expect("device");
    let gpu = Gpu::from_wgpu(device, queue, Some(&adapter));
    let lacks = gpu.shortfalls().join("\n");
    for (feature, line) in [
        (
            wgpu::Features::SHADER_F16,
            "f16 off: the device was created without SHADER_F16",
        ),
        (
            wgpu::Features::SUBGROUP,
            "subgroups off: the device was created without SUBGROUP",
        ),
        (
            wgpu::Features::TIMESTAMP_QUERY,
            "timestamps off: the device was created without TIMESTAMP_QUERY",
        ),
    ] {
        assert_eq!(
            lacks.contains(line),
            adapter.features().contains(feature),
            "{line:?} in:\n{lacks}"
        );
    }
    // Loading does not fail for it: f32 kernels on what the device has.
    assert!(!gpu.caps().f16);
    let dir = model_dir("mlm_v4");
    let enc = Encoder::load_on(gpu, dir.path().to_str().unwrap(), &LoadOptions::default())
        .expect("loads on a bare device");
    assert_eq!(enc.dtype(), DType::F32);
    let v = enc.embed(&["w5 w6"], EmbedPooling::Mean, true).unwrap();
    assert_eq!(v[0].vectors[0].len(), enc.config().hidden_size);
}

#[test]
fn the_hosts_device_lost_callback_stays_the_one_called() {
    let adapter = adapter();
    let desc = device_descriptor(&adapter, &wgpu::DeviceDescriptor::default());
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("device");
    let called = Arc::new(AtomicBool::new(false));
    let flag = called.clone();
    device.set_device_lost_callback(move |_, _| flag.store(true, Ordering::SeqCst));
    let gpu = Gpu::from_wgpu(device.clone(), queue, Some(&adapter));
    assert!(gpu.wait().is_ok());
    device.destroy();
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    assert!(
        called.load(Ordering::SeqCst),
        "the host's callback was not called"
    );
    // The host tells wgbert, as documented; later waits then fail at once.
    gpu.health().fail("the host's device was lost");
    let e = gpu.wait().unwrap_err().to_string();
    assert!(e.contains("the host's device was lost"), "{e}");
}
