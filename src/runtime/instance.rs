//! The wgpu instances wgbert makes for itself, adapter choice over them, and the device
//! request: compute only.
//!
//! wgpu's Vulkan instance enables the window-system surface extensions (Xlib, XCB,
//! Wayland). An instance with those makes Mesa's device-select layer (an implicit layer the
//! Vulkan loader adds wherever Mesa is installed) connect to the display server on every
//! `vkEnumeratePhysicalDevices` to order the GPUs; on a machine without a display each
//! attempt prints `error: XDG_RUNTIME_DIR is invalid or not set in the environment.`
//! (libwayland). A compute engine presents nothing, so where those extensions exist (Linux
//! and the BSDs) wgbert's own Vulkan instance is made without them, and the layer probes no
//! display. A host that hands wgbert its device (`Gpu::from_wgpu`: the desktop app, which
//! renders) keeps the instance it made.

use crate::{Error, Result};

/// Explicit backends, else the primary ones (Vulkan, Metal, DX12); GL is used only when
/// asked for or when no primary adapter exists.
fn backends_from(opt: Option<&str>) -> wgpu::Backends {
    match opt {
        Some(s) => wgpu::Backends::from_comma_list(s),
        None => wgpu::Backends::PRIMARY,
    }
}

/// The adapter `backend` (a comma list; `None`: the primary backends, else all when they
/// have none) and `want` (the first whose name contains it, case-insensitive, or `#N`: the
/// N-th) pick, else the high-performance one (`preferred`).
pub(crate) fn choose(backend: Option<&str>, want: Option<&str>) -> Result<wgpu::Adapter> {
    let mut backends = backends_from(backend);
    let mut all = adapters(backends);
    if backends == wgpu::Backends::PRIMARY && all.is_empty() {
        backends = wgpu::Backends::all();
        all = adapters(backends);
    }
    let Some(want) = want else {
        return preferred(all).ok_or_else(|| {
            Error::NoAdapter(format!(
                " (backends {backends:?}); install a Vulkan/Metal/DX12 driver (on Linux \
                 without a GPU: mesa-vulkan-drivers for lavapipe) or pick one with \
                 --backend/--adapter"
            ))
        });
    };
    let want_lc = want.to_lowercase();
    let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
    let picked = match want.strip_prefix('#').and_then(|n| n.parse::<usize>().ok()) {
        Some(i) => all.into_iter().nth(i),
        None => all
            .into_iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&want_lc)),
    };
    picked.ok_or_else(|| {
        let available = match names.is_empty() {
            true => "none".to_string(),
            false => names.join(", "),
        };
        Error::NoAdapter(format!(" named like '{want}' (available: {available})"))
    })
}

/// Every adapter of `backends`, Vulkan's first.
pub(crate) fn adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let mut out = Vec::new();
    for (instance, backends) in instances(backends) {
        out.extend(pollster::block_on(instance.enumerate_adapters(backends)));
    }
    out
}

/// The adapter a high-performance request gets among `adapters`: a discrete GPU before an
/// integrated one, then a virtual one, any other, and a CPU adapter last; the first of a kind
/// in the drivers' order.
pub(crate) fn preferred(adapters: Vec<wgpu::Adapter>) -> Option<wgpu::Adapter> {
    let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let mut adapters: Vec<(usize, wgpu::Adapter)> =
        adapters.into_iter().map(|a| (rank(&a), a)).collect();
    // Stable: the drivers' order within a kind.
    adapters.sort_by_key(|(r, _)| *r);
    adapters.into_iter().next().map(|(_, a)| a)
}

/// The instances that cover `backends`, each with the backends it is asked for: Vulkan
/// without window-system extensions where that applies, one ordinary instance for the rest.
fn instances(backends: wgpu::Backends) -> Vec<(wgpu::Instance, wgpu::Backends)> {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let mut out = Vec::new();
    let mut rest = backends;
    if backends.contains(wgpu::Backends::VULKAN) {
        if let Some(vulkan) = compute_vulkan(&desc) {
            out.push((vulkan, wgpu::Backends::VULKAN));
            rest.remove(wgpu::Backends::VULKAN);
        }
    }
    if !rest.is_empty() {
        let mut desc = desc;
        desc.backends = rest;
        out.push((wgpu::Instance::new(desc), rest));
    }
    out
}

/// The surface extensions that make the device-select layer probe a display server.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
const WINDOW_SYSTEMS: [&std::ffi::CStr; 3] = [
    c"VK_KHR_xlib_surface",
    c"VK_KHR_xcb_surface",
    c"VK_KHR_wayland_surface",
];

/// A Vulkan instance without window-system surface extensions; `None` where Vulkan cannot
/// be loaded (no loader) and so has no adapters anyway.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
))]
fn compute_vulkan(desc: &wgpu::InstanceDescriptor) -> Option<wgpu::Instance> {
    use wgpu::hal;
    let hal_desc = hal::InstanceDescriptor {
        name: "wgbert",
        flags: desc.flags,
        memory_budget_thresholds: desc.memory_budget_thresholds,
        backend_options: desc.backend_options.clone(),
        telemetry: None,
        display: None,
    };
    // wgpu-hal passes the final list to the instance it wraps, which then knows that no
    // surface of those kinds can be made; wgbert never makes a surface.
    let compute_only: Box<hal::vulkan::CreateInstanceCallback> = Box::new(|args| {
        args.extensions.retain(|e| !WINDOW_SYSTEMS.contains(e));
    });
    // SAFETY: the callback only leaves out surface extensions, which nothing of wgbert uses.
    let made = unsafe { hal::vulkan::Instance::init_with_callback(&hal_desc, Some(compute_only)) };
    match made {
        // SAFETY: a valid instance of the Vulkan backend, handed over whole.
        Ok(instance) => Some(unsafe { wgpu::Instance::from_hal::<hal::api::Vulkan>(instance) }),
        Err(e) => {
            log::debug!("no Vulkan instance: {e}");
            None
        }
    }
}

/// Elsewhere wgpu's own Vulkan instance probes no display.
#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "android"))
)))]
fn compute_vulkan(_desc: &wgpu::InstanceDescriptor) -> Option<wgpu::Instance> {
    None
}

/// `adapter.request_device`, with a refusal (a typed error) for what wgpu-hal reports as a
/// panic: a driver that advertises a feature and then refuses a device with it.
pub(crate) fn request_device(
    adapter: &wgpu::Adapter,
    desc: &wgpu::DeviceDescriptor,
) -> Result<(wgpu::Device, wgpu::Queue)> {
    let refused = |message: String| Error::RequestDevice {
        adapter: adapter.get_info().name,
        message,
    };
    let asked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pollster::block_on(adapter.request_device(desc))
    }));
    match asked {
        Ok(r) => r.map_err(|e| refused(e.to_string())),
        Err(panic) => Err(refused(super::panic_message(
            panic.as_ref(),
            "the driver refused the device",
        ))),
    }
}
