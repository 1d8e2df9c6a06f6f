//! Sharing a host application's device: what wgbert's fastest kernels want from a device,
//! merged with the host's own needs into one descriptor for `Adapter::request_device`, and
//! what a borrowed device lacks, in words an app can show.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
//! let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
//! // The host's own needs (here: none beyond the defaults), raised to what wgbert wants.
//! let desc = wgbert::runtime::device_descriptor(&adapter, &wgpu::DeviceDescriptor::default());
//! let (device, queue) = pollster::block_on(adapter.request_device(&desc))?;
//! let gpu = wgbert::runtime::Gpu::from_wgpu(device, queue, Some(&adapter));
//! for line in gpu.shortfalls() {
//!     eprintln!("{line}"); // e.g. "f16 off: the device was created without SHADER_F16"
//! }
//! # Ok(()) }
//! ```

/// The optional features the kernels use when the adapter has them: f16 storage, subgroup
/// reductions, timestamp queries (autotuning, profiles) and cooperative matrices (tensor
/// cores).
pub const WANTED_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

/// `host`'s descriptor with wgbert's wants added for `adapter`: the features of
/// [`WANTED_FEATURES`] the adapter has, and the adapter's own maxima for the limits that
/// bound batch sizes and kernel tiles (storage-binding size, buffer size, storage buffers
/// per stage, workgroup memory, invocations and sizes, workgroups per dimension). Every
/// other field is the host's. Cooperative matrices turn wgpu's experimental features on.
pub fn device_descriptor<'a>(
    adapter: &wgpu::Adapter,
    host: &wgpu::DeviceDescriptor<'a>,
) -> wgpu::DeviceDescriptor<'a> {
    let features = host.required_features | (adapter.features() & WANTED_FEATURES);
    let have = adapter.limits();
    let mut limits = host.required_limits.clone();
    limits.max_storage_buffer_binding_size = limits
        .max_storage_buffer_binding_size
        .max(have.max_storage_buffer_binding_size);
    limits.max_buffer_size = limits.max_buffer_size.max(have.max_buffer_size);
    limits.max_storage_buffers_per_shader_stage = limits
        .max_storage_buffers_per_shader_stage
        .max(have.max_storage_buffers_per_shader_stage);
    limits.max_compute_workgroup_storage_size = limits
        .max_compute_workgroup_storage_size
        .max(have.max_compute_workgroup_storage_size);
    limits.max_compute_invocations_per_workgroup = limits
        .max_compute_invocations_per_workgroup
        .max(have.max_compute_invocations_per_workgroup);
    limits.max_compute_workgroup_size_x = limits
        .max_compute_workgroup_size_x
        .max(have.max_compute_workgroup_size_x);
    limits.max_compute_workgroup_size_y = limits
        .max_compute_workgroup_size_y
        .max(have.max_compute_workgroup_size_y);
    limits.max_compute_workgroup_size_z = limits
        .max_compute_workgroup_size_z
        .max(have.max_compute_workgroup_size_z);
    limits.max_compute_workgroups_per_dimension = limits
        .max_compute_workgroups_per_dimension
        .max(have.max_compute_workgroups_per_dimension);
    let experimental_features =
        if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            // SAFETY: cooperative matrices are experimental in wgpu; every kernel that uses
            // them is checked against the CPU reference on the device itself before use.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            host.experimental_features
        };
    wgpu::DeviceDescriptor {
        label: host.label,
        required_features: features,
        required_limits: limits,
        experimental_features,
        memory_hints: host.memory_hints.clone(),
        trace: host.trace.clone(),
    }
}

/// What a device lacks against its adapter, one line each ("f16 off: the device was created
/// without SHADER_F16"). Empty when the device has all that wgbert would use. Limits lower
/// than the adapter's are named where they shrink batches or rule out kernels.
pub fn shortfalls(
    device_features: wgpu::Features,
    device_limits: &wgpu::Limits,
    adapter: &wgpu::Adapter,
) -> Vec<String> {
    let mut out = Vec::new();
    let missing = (adapter.features() & WANTED_FEATURES) - device_features;
    for (feature, what, cost) in [
        (
            wgpu::Features::SHADER_F16,
            "f16 off",
            "f32 storage only (twice the memory, slower kernels)",
        ),
        (
            wgpu::Features::SUBGROUP,
            "subgroups off",
            "no subgroup matmul or tensor-core kernels",
        ),
        (
            wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX,
            "tensor cores off",
            "the portable kernels run instead",
        ),
        (
            wgpu::Features::TIMESTAMP_QUERY,
            "timestamps off",
            "no autotuning or GPU timing",
        ),
    ] {
        if missing.contains(feature) {
            out.push(format!(
                "{what}: the device was created without {} ({cost})",
                feature_name(feature)
            ));
        }
    }
    let have = adapter.limits();
    let limits: [(&str, u64, u64, &str); 3] = [
        (
            "max_storage_buffer_binding_size",
            device_limits.max_storage_buffer_binding_size,
            have.max_storage_buffer_binding_size,
            "smaller batches",
        ),
        (
            "max_buffer_size",
            device_limits.max_buffer_size,
            have.max_buffer_size,
            "smaller batches",
        ),
        (
            "max_compute_workgroup_storage_size",
            u64::from(device_limits.max_compute_workgroup_storage_size),
            u64::from(have.max_compute_workgroup_storage_size),
            "smaller kernel tiles",
        ),
    ];
    for (name, got, could, cost) in limits {
        if got < could {
            out.push(format!(
                "{name} {got} of the adapter's {could}: the device was created with a lower \
                 limit ({cost})"
            ));
        }
    }
    out
}

fn feature_name(f: wgpu::Features) -> &'static str {
    if f == wgpu::Features::SHADER_F16 {
        "SHADER_F16"
    } else if f == wgpu::Features::SUBGROUP {
        "SUBGROUP"
    } else if f == wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX {
        "EXPERIMENTAL_COOPERATIVE_MATRIX"
    } else {
        "TIMESTAMP_QUERY"
    }
}
