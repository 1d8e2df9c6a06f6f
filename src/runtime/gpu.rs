//! The GPU: adapter choice, device creation with the adapter's own limits and the optional
//! features the kernels use, the capabilities kernels choose variants from, buffer creation
//! against the device limits (every buffer counted, `runtime::memory`), and the one place
//! where results are read back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::disk_cache::DiskPipelines;
use crate::runtime::health::DeviceHealth;
use crate::runtime::instance;
use crate::runtime::memory::{DeviceBuffer, MemoryCounter, MemoryKind, MemoryStats};
use crate::runtime::pipeline::PipelineCache;
use crate::runtime::share::{device_descriptor, shortfalls};
use crate::{Error, Result};

/// How to pick an adapter and set up its device (`LoadOptions::from_env` fills these from
/// `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGBERT_SHADER_CHECKS`, `WGBERT_CACHE` and
/// `WGBERT_CPU_AS_GPU`).
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Backends to consider ("vulkan", "metal", "dx12", "gl"; comma-separated). `None`: the
    /// primary ones (Vulkan, Metal, DX12), else all.
    pub backend: Option<String>,
    /// Pick the first adapter whose name contains this (case-insensitive), or, written
    /// `#N`, the N-th adapter (from 0) of the chosen backends in the driver's order (one of
    /// several identical GPUs). `None`: the high-performance default.
    pub adapter: Option<String>,
    /// Drop wgpu's per-access bounds clamping in shaders (`WGBERT_SHADER_CHECKS=0`, speed
    /// runs): every kernel guards its own indices, and the tests run with the checks on.
    pub unchecked_shaders: bool,
    /// A directory for the driver's compiled pipelines (`PipelineCache`, where the backend
    /// has one: Vulkan), loaded when the device is made and written as new pipelines are
    /// compiled; `None`: compiled anew by every process.
    pub pipeline_cache_dir: Option<PathBuf>,
    /// Treat a CPU adapter (lavapipe) as a GPU when choosing kernels (`WGBERT_CPU_AS_GPU=1`):
    /// the staged tiled matmul instead of the `DIRECT` build, so that tests on a CPU run
    /// the kernels a GPU runs (`Capabilities::cpu` is false). Autotuning still treats the
    /// adapter as a CPU (its timings say nothing about a GPU).
    pub cpu_as_gpu: bool,
    /// Lowers the largest storage binding the runtime uses to this many bytes (never above
    /// the adapter's own limit; `WGBERT_MAX_BINDING`, `--max-binding`): tensors larger than
    /// a binding are held in row pieces (`model::split`), so a small value exercises that path
    /// on any adapter, or mimics a smaller one (WebGPU's default 128 MiB). `None`: the
    /// adapter's limit.
    pub max_binding: Option<u64>,
}

/// The smallest `GpuOptions::max_binding` accepted: below it, no useful batch fits.
pub const MIN_MAX_BINDING: u64 = 4096;

/// Parses a byte size: a number of bytes, or with a `KiB`, `MiB` or `GiB` suffix (also `K`,
/// `M`, `G`, `KB`..., all binary; case-insensitive), for `--max-binding` and
/// `WGBERT_MAX_BINDING`.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => u32::MAX,
    };
    let n: Option<u64> = digits.parse().ok();
    match n.and_then(|n| n.checked_mul(1u64.checked_shl(shift)?)) {
        Some(bytes) => Ok(bytes),
        None => Err(Error::Option(format!(
            "'{text}' is not a size (bytes, or a number with KiB, MiB or GiB)"
        ))),
    }
}

/// What a device did, counted for reports and tests of warm starts (`Gpu::counters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Compute pipelines created (each compiled by the driver unless its pipeline cache
    /// held it).
    pub pipelines_created: u64,
    /// Tensor-core self-checks run on the device (not answered by a cached verdict).
    pub self_checks_run: u64,
    /// Bytes of compiled pipelines loaded from the pipeline cache when the device was made.
    pub pipeline_cache_loaded: u64,
}

/// A driver known to report cooperative matrices it cannot compile: Mesa 26's lavapipe
/// offers 8x8x8 fragments at every subgroup size (`LP_NATIVE_VECTOR_WIDTH`) but crashes
/// (segmentation fault, "stack smashing detected") compiling even the smallest
/// cooperative-matrix kernel at 16, 32 or 64 lanes (`examples/coop_subgroups.rs`, valid
/// SPIR-V by `spirv-val`). A crash cannot be caught by a self-check, so those are refused.
fn known_coop_fault(info: &wgpu::AdapterInfo, max_subgroup: u32) -> Option<String> {
    let lavapipe = info.device_type == wgpu::DeviceType::Cpu && info.name.starts_with("llvmpipe");
    (lavapipe && max_subgroup != 8).then(|| {
        format!(
            "lavapipe crashes compiling cooperative-matrix kernels at {max_subgroup}-lane \
             subgroups (only 8 lanes work; examples/coop_subgroups.rs reproduces it)"
        )
    })
}

/// A cooperative-matrix configuration the adapter reports (f16 inputs only are kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CoopShape {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// Accumulator type: "f16" or "f32".
    pub acc: &'static str,
}

/// What the kernels may rely on, recorded once per device.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Capabilities {
    /// A CPU adapter (a software rasterizer such as lavapipe): the matmul reads its operands
    /// without staging them in workgroup memory (`ops::matmul::tiled::direct_kernel`).
    /// False on a CPU adapter made with `GpuOptions::cpu_as_gpu`.
    pub cpu: bool,
    pub f16: bool,
    pub subgroups: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub timestamps: bool,
    pub coop_matrix: Vec<CoopShape>,
    /// Why the cooperative matrices the adapter reports must not be used, where a driver is
    /// known to fail with them (`known_coop_fault`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coop_fault: Option<String>,
    pub max_storage_binding: u64,
    pub max_buffer_size: u64,
    pub max_workgroup_storage: u32,
    pub max_invocations: u32,
    pub max_workgroups_per_dim: u32,
    pub min_uniform_offset_alignment: u32,
    pub min_storage_offset_alignment: u32,
}

impl Capabilities {
    fn from_parts(
        features: wgpu::Features,
        limits: &wgpu::Limits,
        info: &wgpu::AdapterInfo,
        coop: Vec<CoopShape>,
    ) -> Self {
        let subgroups = features.contains(wgpu::Features::SUBGROUP);
        let max_subgroup = if subgroups { info.subgroup_max_size } else { 0 };
        Capabilities {
            coop_fault: known_coop_fault(info, max_subgroup),
            cpu: info.device_type == wgpu::DeviceType::Cpu,
            f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups,
            subgroup_min_size: if subgroups { info.subgroup_min_size } else { 0 },
            subgroup_max_size: if subgroups { info.subgroup_max_size } else { 0 },
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            coop_matrix: if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                coop
            } else {
                Vec::new()
            },
            max_storage_binding: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_workgroup_storage: limits.max_compute_workgroup_storage_size,
            max_invocations: limits.max_compute_invocations_per_workgroup,
            max_workgroups_per_dim: limits.max_compute_workgroups_per_dimension,
            min_uniform_offset_alignment: limits.min_uniform_buffer_offset_alignment,
            min_storage_offset_alignment: limits.min_storage_buffer_offset_alignment,
        }
    }

    /// Checks that `bytes` fits one storage binding (and one buffer) on a device of these
    /// limits: `Error::BufferTooLarge` names the buffer and the limit otherwise.
    pub fn check_binding(&self, name: &str, bytes: u64) -> Result<()> {
        if bytes > self.max_buffer_size {
            return Err(Error::BufferTooLarge {
                name: name.to_string(),
                bytes,
                limit: self.max_buffer_size,
                what: "max_buffer_size",
            });
        }
        if bytes > self.max_storage_binding {
            return Err(Error::BufferTooLarge {
                name: name.to_string(),
                bytes,
                limit: self.max_storage_binding,
                what: "max_storage_buffer_binding_size",
            });
        }
        Ok(())
    }

    /// True when a 16x16x16 f16 cooperative matrix with an f32 accumulator is available.
    pub fn coop_16x16_f32(&self) -> bool {
        self.coop_matrix
            .iter()
            .any(|s| s.m == 16 && s.n == 16 && s.k == 16 && s.acc == "f32")
    }
}

/// A device and queue plus what the runtime knows about them. Shared as `Arc<Gpu>`.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    caps: Capabilities,
    pipelines: PipelineCache,
    bounds_checks: bool,
    health: Arc<DeviceHealth>,
    /// What a borrowed device lacks against its adapter (see [`Gpu::shortfalls`]).
    shortfalls: Vec<String>,
    memory: Arc<MemoryCounter>,
    /// Verdicts of named self-checks run on this device, kept for its life.
    checks: Mutex<HashMap<String, std::result::Result<(), String>>>,
    pipelines_created: AtomicU64,
    self_checks_run: AtomicU64,
    /// The driver's pipeline cache and the file it is kept in.
    disk: Option<DiskPipelines>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", &self.info.name)
            .field("caps", &self.caps)
            .finish()
    }
}

/// Everything `wgbert info` reports about one adapter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    /// The PCI bus address the driver reports (`0000:01:00.0`), empty where it reports none.
    pub pci_bus_id: String,
    pub capabilities: Capabilities,
}

fn coop_shapes(adapter: &wgpu::Adapter) -> Vec<CoopShape> {
    if !adapter
        .features()
        .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    {
        return Vec::new();
    }
    let mut shapes: Vec<CoopShape> = adapter
        .cooperative_matrix_properties()
        .into_iter()
        .filter(|p| p.ab_type == wgpu::CooperativeScalarType::F16)
        .filter_map(|p| {
            let acc = match p.cr_type {
                wgpu::CooperativeScalarType::F16 => "f16",
                wgpu::CooperativeScalarType::F32 => "f32",
                _ => return None,
            };
            Some(CoopShape {
                m: p.m_size,
                n: p.n_size,
                k: p.k_size,
                acc,
            })
        })
        .collect();
    shapes.dedup();
    shapes
}

fn report(adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let caps = Capabilities::from_parts(
        adapter.features(),
        &adapter.limits(),
        &info,
        coop_shapes(adapter),
    );
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: info.driver.clone(),
        driver_info: info.driver_info.clone(),
        vendor: info.vendor,
        device: info.device,
        pci_bus_id: info.device_pci_bus_id.clone(),
        capabilities: caps,
    }
}

/// Lists every adapter the chosen backends expose (all backends when `None`).
pub fn list_adapters(backend: Option<&str>) -> Vec<AdapterReport> {
    let backends = match backend {
        Some(s) => wgpu::Backends::from_comma_list(s),
        None => wgpu::Backends::all(),
    };
    instance::adapters(backends).iter().map(report).collect()
}

impl Gpu {
    /// Picks an adapter and creates a device with its own limits and the wanted features.
    pub fn new(opts: &GpuOptions) -> Result<Arc<Gpu>> {
        let adapter = instance::choose(opts.backend.as_deref(), opts.adapter.as_deref())?;
        let info = adapter.get_info();
        let coop = coop_shapes(&adapter);
        // The driver's pipeline cache is wgbert's own want when a cache directory is given.
        let cache = match opts.pipeline_cache_dir {
            Some(_) => adapter.features() & wgpu::Features::PIPELINE_CACHE,
            None => wgpu::Features::empty(),
        };
        let own = wgpu::DeviceDescriptor {
            label: Some("wgbert"),
            required_features: cache,
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let desc = device_descriptor(&adapter, &own);
        let coop_feature = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        let (device, queue) = match instance::request_device(&adapter, &desc) {
            // Drivers that advertise cooperative matrices and then refuse the device with
            // them (Mesa 26's lavapipe at 4-lane subgroups) run without.
            Err(e) if desc.required_features.contains(coop_feature) => {
                log::warn!("{e}; trying again without cooperative matrices");
                let mut without = desc.clone();
                without.required_features.remove(coop_feature);
                instance::request_device(&adapter, &without)?
            }
            r => r?,
        };
        // wgbert owns this device, so its callbacks are wgbert's: a lost device marks it
        // failed, and errors outside any error scope are logged instead of panicking.
        let health = Arc::new(DeviceHealth::default());
        let lost = health.clone();
        let lost_name = info.name.clone();
        device.set_device_lost_callback(move |reason, msg| {
            log::error!("device '{lost_name}' lost ({reason:?}): {msg}");
            let detail = if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            };
            lost.fail(format!("the device was lost ({reason:?}){detail}"));
        });
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            log::error!("uncaptured wgpu error: {e}");
        }));
        let mut gpu = Self::assemble(device, queue, info, coop, health, Vec::new());
        gpu.bounds_checks = !opts.unchecked_shaders;
        gpu.caps.cpu &= !opts.cpu_as_gpu;
        if let Some(limit) = opts.max_binding {
            gpu.lower_max_binding(limit)?;
        }
        if let Some(dir) = &opts.pipeline_cache_dir {
            gpu.disk = DiskPipelines::open(&gpu, dir);
        }
        Ok(Arc::new(gpu))
    }

    /// Adopts a device and queue owned by a host application (create it from
    /// [`device_descriptor`] to give the kernels what they want). The runtime uses whatever
    /// features and limits the device has; pass the adapter (if at hand) so its name,
    /// cooperative-matrix shapes and [`Gpu::shortfalls`] are known.
    ///
    /// The host's device-lost callback and uncaptured-error handler stay the host's: wgbert
    /// catches its own errors through error scopes, and notices a lost device when a wait
    /// fails. A host that learns of a loss first (in its own callback) tells wgbert with
    /// `gpu.health().fail(reason)`, so that later calls fail at once.
    pub fn from_wgpu(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: Option<&wgpu::Adapter>,
    ) -> Arc<Gpu> {
        let info = device.adapter_info();
        let coop = adapter.map(coop_shapes).unwrap_or_default();
        let short = adapter
            .map(|a| shortfalls(device.features(), &device.limits(), a))
            .unwrap_or_default();
        let health = Arc::new(DeviceHealth::default());
        Arc::new(Self::assemble(device, queue, info, coop, health, short))
    }

    fn assemble(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        coop: Vec<CoopShape>,
        health: Arc<DeviceHealth>,
        shortfalls: Vec<String>,
    ) -> Gpu {
        let caps = Capabilities::from_parts(device.features(), &device.limits(), &info, coop);
        Gpu {
            device,
            queue,
            info,
            caps,
            pipelines: PipelineCache::default(),
            memory: Arc::default(),
            bounds_checks: true,
            health,
            shortfalls,
            checks: Mutex::new(HashMap::new()),
            pipelines_created: AtomicU64::new(0),
            self_checks_run: AtomicU64::new(0),
            disk: None,
        }
    }

    /// Lowers the largest storage binding the runtime uses (`GpuOptions::max_binding`):
    /// never above the adapter's own limit, never below `MIN_MAX_BINDING`; a multiple of 4.
    fn lower_max_binding(&mut self, limit: u64) -> Result<()> {
        if limit < MIN_MAX_BINDING {
            return Err(Error::Option(format!(
                "a maximum binding of {limit} bytes is below the least accepted, \
                 {MIN_MAX_BINDING} bytes"
            )));
        }
        let own = self.caps.max_storage_binding;
        self.caps.max_storage_binding = own.min(limit - limit % 4);
        Ok(())
    }

    /// What this device did so far: pipelines created, self-checks run, pipeline-cache
    /// bytes loaded.
    pub fn counters(&self) -> Counters {
        Counters {
            pipelines_created: self.pipelines_created.load(Ordering::Relaxed),
            self_checks_run: self.self_checks_run.load(Ordering::Relaxed),
            pipeline_cache_loaded: self.disk.as_ref().map_or(0, |d| d.loaded()),
        }
    }

    /// The file of the driver's pipeline cache, where one is in use.
    pub fn pipeline_cache_path(&self) -> Option<&std::path::Path> {
        self.disk.as_ref().map(|d| d.path())
    }

    /// The verdict of the self-check `name` on this device: the one kept from an earlier
    /// call, else `check`'s (run now, outside the lock: two threads may both check,
    /// harmlessly), kept for the device's life.
    pub(crate) fn self_check(
        &self,
        name: &str,
        check: impl FnOnce() -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        if let Some(v) = self.checks.lock().ok().and_then(|m| m.get(name).cloned()) {
            return v;
        }
        let verdict = check();
        if let Ok(mut m) = self.checks.lock() {
            m.insert(name.to_string(), verdict.clone());
        }
        verdict
    }

    /// Counts a self-check run on the device (`counters`).
    pub(crate) fn count_self_check(&self) {
        self.self_checks_run.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_pipeline(&self) {
        self.pipelines_created.fetch_add(1, Ordering::Relaxed);
    }

    /// The driver's pipeline cache, for pipeline creation.
    pub(crate) fn driver_cache(&self) -> Option<&wgpu::PipelineCache> {
        self.disk.as_ref().map(|d| d.cache())
    }

    /// Writes the driver's pipeline cache to its file if pipelines were created since it was
    /// last written (after a plan is built, and when the device is dropped). A cache that
    /// cannot be written only costs compiling again next time (logged).
    pub fn save_pipeline_cache(&self) {
        if let Some(d) = &self.disk {
            d.save(self.pipelines_created.load(Ordering::Relaxed));
        }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }
    pub fn caps(&self) -> &Capabilities {
        &self.caps
    }
    /// Whether shaders keep wgpu's runtime bounds checks (off with `WGBERT_SHADER_CHECKS=0`).
    pub fn bounds_checks(&self) -> bool {
        self.bounds_checks
    }
    pub(crate) fn pipelines(&self) -> &PipelineCache {
        &self.pipelines
    }

    /// Checks that `bytes` fits one storage binding (and one buffer) on this device.
    pub fn check_binding(&self, name: &str, bytes: u64) -> Result<()> {
        self.caps.check_binding(name, bytes)
    }

    /// Device bytes held by the buffers this runtime created, now (in total and by kind)
    /// and at most (see `runtime::memory`).
    pub fn memory(&self) -> MemoryStats {
        self.memory.stats()
    }

    /// Restarts the peak of `memory()` from what is held now (to measure one workload).
    pub fn reset_peak(&self) {
        self.memory.reset_peak();
    }

    /// Creates a buffer inside error scopes, counted under `kind` while it lives.
    pub fn buffer(&self, kind: MemoryKind, desc: &wgpu::BufferDescriptor) -> Result<DeviceBuffer> {
        let label = desc.label.unwrap_or("buffer");
        let context = format!("allocating '{label}' ({} bytes)", desc.size);
        let buffer = self.guarded(&context, || self.device.create_buffer(desc))?;
        Ok(DeviceBuffer::counted(buffer, kind, &self.memory))
    }

    /// A zero-filled storage buffer that can be bound whole, written and read back, counted
    /// as `MemoryKind::Other` (`storage_as` names the kind).
    pub fn storage(&self, name: &str, bytes: u64) -> Result<DeviceBuffer> {
        self.storage_as(MemoryKind::Other, name, bytes)
    }

    /// `storage`, counted under `kind`.
    pub fn storage_as(&self, kind: MemoryKind, name: &str, bytes: u64) -> Result<DeviceBuffer> {
        let size = bytes.max(4).next_multiple_of(4);
        self.check_binding(name, size)?;
        self.buffer(
            kind,
            &wgpu::BufferDescriptor {
                label: Some(name),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            },
        )
    }

    /// A storage buffer holding `data` (padded to 4 bytes), counted as `MemoryKind::Other`.
    pub fn upload(&self, name: &str, data: &[u8]) -> Result<DeviceBuffer> {
        self.upload_as(MemoryKind::Other, name, data)
    }

    /// `upload`, counted under `kind`.
    pub fn upload_as(&self, kind: MemoryKind, name: &str, data: &[u8]) -> Result<DeviceBuffer> {
        let buf = self.storage_as(kind, name, data.len() as u64)?;
        self.write(&buf, 0, data);
        Ok(buf)
    }

    /// Writes bytes into a buffer at an offset (padded to 4 bytes as wgpu requires).
    pub fn write(&self, buf: &wgpu::Buffer, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if data.len().is_multiple_of(4) {
            self.queue.write_buffer(buf, offset, data);
        } else {
            let mut padded = data.to_vec();
            padded.resize(data.len().next_multiple_of(4), 0);
            self.queue.write_buffer(buf, offset, &padded);
        }
    }

    /// Runs `f` inside out-of-memory and validation error scopes, turning what they catch
    /// into typed errors.
    pub fn guarded<T>(&self, context: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o {
            log::debug!("{e}");
            return Err(Error::OutOfMemory {
                context: context.to_string(),
            });
        }
        if let Some(e) = v {
            return Err(Error::Gpu {
                context: context.to_string(),
                message: e.to_string(),
            });
        }
        Ok(value)
    }

    /// What a borrowed device lacks against its adapter, one line each, for an app to show
    /// ("f16 off: the device was created without SHADER_F16 ..."); empty for a device wgbert
    /// created itself, or when the host's device has all that wgbert would use.
    pub fn shortfalls(&self) -> &[String] {
        &self.shortfalls
    }

    /// Whether the device is still usable: lost or hung devices stay failed (see
    /// [`DeviceHealth`]). A host that keeps its own device-lost callback calls
    /// `health().fail(..)` from it.
    pub fn health(&self) -> &DeviceHealth {
        &self.health
    }

    /// Waits for all submitted work, at most [`DeviceHealth::wait_timeout`]. A lost device
    /// is `Error::DeviceLost` and a wait past the timeout `Error::GpuTimeout`; both mark the
    /// device failed, and every later wait fails at once.
    pub fn wait(&self) -> Result<()> {
        if let Some(why) = self.health.failure() {
            return Err(Error::DeviceLost(why.to_string()));
        }
        let timeout = self.health.wait_timeout();
        let polled = self.device.poll(wgpu::PollType::Wait {
            submission_index: None,
            timeout,
        });
        self.health.settle(polled.map(drop), timeout)
    }

    /// Reads `len` bytes at `offset` of a storage buffer back to the host. The one readback
    /// path of the crate: copy into a staging buffer, submit, map, wait.
    pub fn read(&self, what: &str, buf: &wgpu::Buffer, offset: u64, len: u64) -> Result<Vec<u8>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let what = what.to_string();
        let padded = len.next_multiple_of(4);
        if !offset.is_multiple_of(4) || offset + padded > buf.size() {
            return Err(Error::Readback {
                what,
                message: format!(
                    "range {offset}..{} outside {} bytes",
                    offset + len,
                    buf.size()
                ),
            });
        }
        let staging = self.buffer(
            MemoryKind::Other,
            &wgpu::BufferDescriptor {
                label: Some("readback"),
                size: padded,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            },
        )?;
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(buf, offset, &staging, 0, padded);
        self.queue.submit([enc.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::Readback {
                    what,
                    message: e.to_string(),
                });
            }
            Err(_) => {
                return Err(Error::Readback {
                    what,
                    message: "map callback never ran".into(),
                });
            }
        }
        let mut out = slice
            .get_mapped_range()
            .map_err(|e| Error::Readback {
                what: what.clone(),
                message: e.to_string(),
            })?
            .to_vec();
        staging.unmap();
        out.truncate(len as usize);
        Ok(out)
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        self.save_pipeline_cache();
    }
}
