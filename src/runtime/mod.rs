//! The model-agnostic runtime: the GPU and its capabilities, shader preprocessing and the
//! pipeline cache, device-memory accounting, activation placement (a plan's own or an arena
//! shared by several plans), recorded plans, readback and GPU timing.

pub mod arena;
mod disk_cache;
pub mod gpu;
pub mod health;
mod instance;
pub mod memory;
pub mod params;
pub mod pipeline;
pub mod plan;
pub mod profile;
pub mod shader;
pub mod share;

pub use gpu::{
    AdapterReport, Capabilities, CoopShape, Counters, Gpu, GpuOptions, MIN_MAX_BINDING,
    list_adapters, parse_size,
};
pub use health::DeviceHealth;
pub use memory::{DeviceBuffer, MemoryKind, MemoryStats};
pub use params::{GpuParams, SmokeParams};
pub use pipeline::{Access, Kernel};
pub use plan::{Launch, Plan, PlanBuilder, RunSizes, TensorId};
pub use profile::Profile;
pub use share::{WANTED_FEATURES, device_descriptor};

/// Spreads `n` workgroups over x and y so neither exceeds `max_per_dim`; shaders recover the
/// linear index as `wg.x + wg.y * num_workgroups.x` and skip indices past their work.
/// `n == 0` gives a zero count, which `Plan::run` skips.
pub fn grid(n: u32, max_per_dim: u32) -> [u32; 3] {
    if n <= max_per_dim {
        [n, 1, 1]
    } else {
        let y = n.div_ceil(max_per_dim);
        [n.div_ceil(y), y, 1]
    }
}

/// The message of a caught panic (wgpu reports some driver and translator failures as
/// panics, which the runtime turns into errors), else `otherwise`.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send), otherwise: &str) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| otherwise.to_string())
}

/// Workgroups needed to cover `n` items with `per` items each.
pub fn groups(n: u32, per: u32) -> u32 {
    n.div_ceil(per)
}
