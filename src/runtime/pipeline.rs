//! Kernels and the pipeline cache. A `Kernel` names a shader file, an entry point, the
//! preprocessor defines of its variant and the access of each storage binding; pipelines are
//! created once per distinct `Kernel` and shared by every plan on the device.
//!
//! Binding convention of every kernel: `@group(0) @binding(0)` is the step's parameters
//! (a uniform struct of at most `PARAMS_SLOT` bytes, bound at a dynamic offset of the plan's
//! one uniform buffer); bindings `1..=n` are storage buffers in the order of `bindings`.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use crate::runtime::gpu::Gpu;
use crate::runtime::params::GpuParams;
use crate::runtime::shader;
use crate::{Error, Result};

/// Bytes reserved for one step's parameters in the plan's uniform buffer.
pub const PARAMS_SLOT: u64 = 256;

/// How a kernel uses a storage binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// One compute pipeline: shader + entry + variant defines + binding accesses, and the size
/// of its parameter block.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Kernel {
    pub shader: &'static str,
    pub entry: &'static str,
    pub defines: Vec<(String, String)>,
    pub bindings: Vec<Access>,
    /// Bytes of the parameter block of binding 0 (`with_params`). A test compares it with
    /// the size naga reflects from the WGSL for every variant, and `PlanBuilder` refuses
    /// launches of another size. `None` for a kernel not declared yet.
    pub params: Option<u64>,
    /// The WGSL declaration of that block, which the shader's `{{PARAMS}}` expands to.
    pub params_wgsl: Option<&'static str>,
    /// The cooperative-matrix fragment shape `[m, n, k]` of a kernel whose fragments WGSL
    /// cannot spell (naga 30's WGSL has `coop_mat8x8` and `coop_mat16x16` only): its module
    /// is parsed with square placeholders and reshaped (`shader::reshape_coop`) before the
    /// driver sees it. `None`: the WGSL is the module.
    pub coop_shape: Option<[u32; 3]>,
}

impl Kernel {
    pub fn new(shader: &'static str, entry: &'static str, bindings: &[Access]) -> Self {
        Kernel {
            shader,
            entry,
            defines: Vec::new(),
            bindings: bindings.to_vec(),
            params: None,
            params_wgsl: None,
            coop_shape: None,
        }
    }

    /// Declares the fragment shape `[m, n, k]` its cooperative-matrix types take where that
    /// is not square (builder style; square shapes are spelled in WGSL and left as they are).
    pub fn with_coop_shape(mut self, shape: [u32; 3]) -> Self {
        let square = shape.iter().all(|&s| s == shape[0]);
        self.coop_shape = (!square).then_some(shape);
        self
    }

    /// Declares `P` as the parameter block of binding 0 (builder style): its size, and the
    /// WGSL declaration the shader's `{{PARAMS}}` expands to.
    pub fn with_params<P: GpuParams>(mut self) -> Self {
        self.params = Some(std::mem::size_of::<P>() as u64);
        self.params_wgsl = Some(P::WGSL);
        self
    }

    /// Adds a preprocessor define (builder style).
    pub fn define(mut self, key: &str, value: impl ToString) -> Self {
        self.defines.push((key.to_string(), value.to_string()));
        self
    }

    /// A readable key such as `matmul/matmul_residual[ELEM=f16]`.
    pub fn name(&self) -> String {
        let mut s = format!("{}/{}", self.shader, self.entry);
        if !self.defines.is_empty() {
            let d: Vec<String> = self
                .defines
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&format!("[{}]", d.join(",")));
        }
        s
    }

    /// The preprocessed WGSL of this variant.
    pub fn wgsl(&self) -> Result<String> {
        match self.params_wgsl {
            Some(decl) => {
                let mut defines = self.defines.clone();
                defines.push(("PARAMS".to_string(), decl.to_string()));
                shader::preprocess(self.shader, &defines)
            }
            None => shader::preprocess(self.shader, &self.defines),
        }
    }
}

impl Kernel {
    /// The naga module of this variant: its WGSL parsed (and validated by the caller), its
    /// cooperative-matrix types reshaped where `coop_shape` says so.
    pub fn module(&self) -> Result<wgpu::naga::Module> {
        let source = self.wgsl()?;
        let err = |message: String| Error::Shader {
            kernel: self.name(),
            message,
        };
        let mut module = wgpu::naga::front::wgsl::parse_str(&source)
            .map_err(|e| err(e.emit_to_string(&source)))?;
        if let Some(shape) = self.coop_shape {
            shader::reshape_coop(&mut module, shape).map_err(err)?;
        }
        Ok(module)
    }
}

/// A created pipeline and the bind group layout it was created with.
#[derive(Debug)]
pub struct CachedPipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// One kernel's pipeline once created; its lock is held while it is created, so a kernel
/// is never compiled twice, while other kernels compile beside it.
type Slot = Arc<Mutex<Option<Arc<CachedPipeline>>>>;

/// Pipelines and bind group layouts, created once per device.
#[derive(Default)]
pub struct PipelineCache {
    pipelines: Mutex<HashMap<Kernel, Slot>>,
    layouts: Mutex<HashMap<Vec<Access>, wgpu::BindGroupLayout>>,
}

impl PipelineCache {
    /// Number of kernels asked for so far (each compiled once, or failed).
    pub fn len(&self) -> usize {
        self.pipelines.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn slot(&self, kernel: &Kernel) -> Result<Slot> {
        let mut map = self.pipelines.lock().map_err(|_| poisoned())?;
        Ok(map.entry(kernel.clone()).or_default().clone())
    }

    /// Whether `kernel`'s pipeline exists (false while it is being created).
    fn has(&self, kernel: &Kernel) -> bool {
        let slot = self
            .pipelines
            .lock()
            .ok()
            .and_then(|m| m.get(kernel).cloned());
        slot.is_some_and(|s| s.try_lock().is_ok_and(|p| p.is_some()))
    }
}

fn layout_for(gpu: &Gpu, access: &[Access]) -> Result<wgpu::BindGroupLayout> {
    let cache = &gpu.pipelines().layouts;
    let mut map = cache.lock().map_err(|_| poisoned())?;
    if let Some(l) = map.get(access) {
        return Ok(l.clone());
    }
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: None,
        },
        count: None,
    }];
    for (i, a) in access.iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: *a == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    let layout = gpu.guarded("creating a bind group layout", || {
        gpu.device()
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            })
    })?;
    map.insert(access.to_vec(), layout.clone());
    Ok(layout)
}

fn poisoned() -> Error {
    Error::Gpu {
        context: "pipeline cache".into(),
        message: "lock poisoned by a panic".into(),
    }
}

/// The pipeline of `kernel`, created on first use (by one thread: another asking for the
/// same kernel meanwhile waits for it). Shader and pipeline errors (including a panic inside
/// the shader translator) become `Error::Shader` naming the kernel.
pub fn pipeline(gpu: &Gpu, kernel: &Kernel) -> Result<Arc<CachedPipeline>> {
    let slot = gpu.pipelines().slot(kernel)?;
    let mut slot = slot.lock().map_err(|_| poisoned())?;
    if let Some(p) = slot.as_ref() {
        return Ok(p.clone());
    }
    let created = create(gpu, kernel)?;
    *slot = Some(created.clone());
    Ok(created)
}

/// Creates the pipelines of `kernels` that do not exist yet, on up to as many threads as the
/// machine has cores (drivers compile on the calling thread; one on GL): a plan's kernels before it
/// records them, a self-check's before it runs them. The first error, in `kernels`' order.
pub fn prepare<'a>(gpu: &Gpu, kernels: impl IntoIterator<Item = &'a Kernel>) -> Result<()> {
    let mut missing: Vec<&Kernel> = Vec::new();
    for k in kernels {
        if !missing.contains(&k) && !gpu.pipelines().has(k) {
            missing.push(k);
        }
    }
    // GL has one context, locked for every call and compile: threads would only queue on
    // it, and wgpu-hal gives up (panics) on a lock held for seconds by a long compile.
    let cores = match gpu.info().backend {
        wgpu::Backend::Gl => 1,
        _ => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let threads = cores.min(missing.len());
    if threads <= 1 {
        return missing
            .into_iter()
            .try_for_each(|k| pipeline(gpu, k).map(drop));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<()>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(k) = missing.get(i) else { break done };
                        done.push((i, pipeline(gpu, k).map(drop)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|_| vec![(usize::MAX, Err(thread_panicked()))])
            })
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().try_for_each(|(_, r)| r)
}

/// A compiling thread of `prepare` panicked (outside the translator, whose panics `create`
/// catches).
fn thread_panicked() -> Error {
    Error::Gpu {
        context: "creating pipelines".into(),
        message: "a compiling thread panicked".into(),
    }
}

/// Compiles `kernel`'s pipeline (the caller holds its slot).
fn create(gpu: &Gpu, kernel: &Kernel) -> Result<Arc<CachedPipeline>> {
    let name = kernel.name();
    let source = match kernel.coop_shape {
        None => wgpu::ShaderSource::Wgsl(kernel.wgsl()?.into()),
        Some(_) => wgpu::ShaderSource::Naga(std::borrow::Cow::Owned(kernel.module()?)),
    };
    let shader_err = |message: String| Error::Shader {
        kernel: name.clone(),
        message,
    };
    let layout = layout_for(gpu, &kernel.bindings)?;
    let device = gpu.device();
    let started = crate::time::Instant::now();
    let created = std::panic::catch_unwind(AssertUnwindSafe(|| {
        gpu.guarded(&format!("creating kernel {name}"), || {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(&name),
                source,
            };
            let module = if gpu.bounds_checks() {
                device.create_shader_module(desc)
            } else {
                // SAFETY: every kernel bounds its indices by the sizes in its parameters,
                // which `record` checks against the buffers; the tests run with checks on.
                unsafe {
                    device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            };
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(&name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&name),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &[],
                    // Every kernel writes its workgroup memory before reading it.
                    zero_initialize_workgroup_memory: false,
                },
                cache: gpu.driver_cache(),
            })
        })
    }));
    let pipeline = match created {
        Ok(Ok(p)) => p,
        Ok(Err(Error::Gpu { message, .. })) => return Err(shader_err(message)),
        Ok(Err(e)) => return Err(e),
        Err(panic) => {
            let msg = crate::runtime::panic_message(panic.as_ref(), "panic in the shader compiler");
            return Err(shader_err(format!("shader translation panicked: {msg}")));
        }
    };
    gpu.count_pipeline();
    log::debug!(
        "kernel {name}: created in {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(Arc::new(CachedPipeline { pipeline, layout }))
}
