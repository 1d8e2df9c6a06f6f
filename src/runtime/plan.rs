//! Recorded plans. A `PlanBuilder` collects tensors and steps once; `build` places the
//! activations (see `arena`: into the plan's own slots or a `SharedArena`), creates buffers,
//! pipelines and bind groups. A `Plan` then runs many times: the host writes its inputs,
//! `run` evaluates each step's launch function for the batch's sizes, writes all parameters
//! into the one uniform buffer and encodes every step into one command buffer. Nothing is
//! allocated per run; a plan in a shared arena that another plan grew binds the new slots
//! first (`Plan::refresh`).

use std::num::NonZeroU64;
use std::sync::Arc;

use crate::runtime::arena::{self, Lifetime, SharedArena};
use crate::runtime::gpu::Gpu;
use crate::runtime::memory::{DeviceBuffer, MemoryKind};
use crate::runtime::pipeline::{self, Access, CachedPipeline, Kernel, PARAMS_SLOT};
use crate::runtime::profile::{self, Profile};
use crate::{Error, Result};

/// A tensor of a plan (an index into its tensor table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TensorId(pub(crate) usize);

/// The sizes of one run. Steps compute their parameters and workgroup counts from these;
/// the plan's buffers are sized for the capacity it was built with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSizes {
    /// Rows of the packed activations (tokens).
    pub rows: u32,
    /// Segments (sequences) in the batch.
    pub segments: u32,
    /// Longest segment.
    pub max_segment: u32,
    /// Rows selected for a head (e.g. `[MASK]` positions), if any.
    pub selected: u32,
}

impl RunSizes {
    /// The sizes of a batch of sequences of `lens` rows packed back to back, and their row
    /// offsets `[0, l0, l0 + l1, ...]` (what the kernels read as `cu_seqlens`).
    pub fn packed(lens: &[u32]) -> (RunSizes, Vec<u32>) {
        let mut cu = vec![0u32];
        for l in lens {
            cu.push(cu[cu.len() - 1] + l);
        }
        let sizes = RunSizes {
            rows: cu[cu.len() - 1],
            segments: lens.len() as u32,
            max_segment: lens.iter().copied().max().unwrap_or(0),
            selected: 0,
        };
        (sizes, cu)
    }
}

/// What a step dispatches in one run: its parameter bytes and workgroup counts.
/// A zero count skips the step.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    pub params: Vec<u8>,
    pub workgroups: [u32; 3],
}

impl Launch {
    pub fn new<P: bytemuck::Pod>(params: &P, workgroups: [u32; 3]) -> Self {
        Launch {
            params: bytemuck::bytes_of(params).to_vec(),
            workgroups,
        }
    }
}

type LaunchFn = Box<dyn Fn(&RunSizes) -> Launch + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Input,
    Output,
    External,
    Activation,
}

struct TensorDecl {
    name: String,
    bytes: u64,
    kind: Kind,
    external: Option<DeviceBuffer>,
}

struct StepDecl {
    label: String,
    kernel: Kernel,
    bindings: Vec<TensorId>,
    launch: LaunchFn,
}

/// Collects the tensors and steps of a plan.
pub struct PlanBuilder {
    gpu: Arc<Gpu>,
    tensors: Vec<TensorDecl>,
    steps: Vec<StepDecl>,
    memory: MemoryKind,
    arena: Option<Arc<SharedArena>>,
}

impl PlanBuilder {
    /// A plan whose buffers count as `MemoryKind::Activations`, in slots of its own.
    pub fn new(gpu: Arc<Gpu>) -> Self {
        PlanBuilder {
            gpu,
            tensors: Vec::new(),
            steps: Vec::new(),
            memory: MemoryKind::Activations,
            arena: None,
        }
    }

    /// Counts the plan's own buffers (inputs, outputs, parameters, own slots) under `kind`.
    pub fn memory_kind(mut self, kind: MemoryKind) -> Self {
        self.memory = kind;
        self
    }

    /// Places the activations into `arena`, shared with other plans that never run at the
    /// same time as this one.
    pub fn shared_arena(mut self, arena: Arc<SharedArena>) -> Self {
        self.arena = Some(arena);
        self
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    fn add(
        &mut self,
        name: &str,
        bytes: u64,
        kind: Kind,
        external: Option<DeviceBuffer>,
    ) -> TensorId {
        self.tensors.push(TensorDecl {
            name: name.to_string(),
            bytes,
            kind,
            external,
        });
        TensorId(self.tensors.len() - 1)
    }

    /// A buffer the host writes before each run (ids, offsets...).
    pub fn input(&mut self, name: &str, bytes: u64) -> TensorId {
        self.add(name, bytes, Kind::Input, None)
    }

    /// A buffer the host reads after a run; it is never shared with other tensors.
    pub fn output(&mut self, name: &str, bytes: u64) -> TensorId {
        self.add(name, bytes, Kind::Output, None)
    }

    /// A buffer created outside the plan (weights), bound whole.
    pub fn external(&mut self, name: &str, buffer: &DeviceBuffer) -> TensorId {
        self.add(name, buffer.size(), Kind::External, Some(buffer.clone()))
    }

    /// A temporary that lives from its first to its last step and may share memory with
    /// other temporaries. Its contents are undefined until a step writes it.
    pub fn activation(&mut self, name: &str, bytes: u64) -> TensorId {
        self.add(name, bytes, Kind::Activation, None)
    }

    /// Bytes a tensor was declared with.
    pub fn bytes(&self, t: TensorId) -> u64 {
        self.tensors[t.0].bytes
    }

    /// Appends a step. `launch` maps the run's sizes to parameters and workgroup counts.
    pub fn step(
        &mut self,
        label: impl Into<String>,
        kernel: Kernel,
        bindings: &[TensorId],
        launch: impl Fn(&RunSizes) -> Launch + Send + Sync + 'static,
    ) -> Result<()> {
        let label = label.into();
        if bindings.len() != kernel.bindings.len() {
            return Err(Error::PlanInput(format!(
                "step '{label}': kernel {} takes {} buffers, got {}",
                kernel.name(),
                kernel.bindings.len(),
                bindings.len()
            )));
        }
        for (i, t) in bindings.iter().enumerate() {
            let writes = kernel.bindings[i] == Access::ReadWrite;
            let aliased = bindings.iter().enumerate().any(|(j, u)| j != i && u == t);
            if writes && aliased {
                return Err(Error::PlanInput(format!(
                    "step '{label}': '{}' is bound twice and written",
                    self.tensors[t.0].name
                )));
            }
        }
        let first = launch(&RunSizes::default());
        check_params(&label, &kernel.name(), kernel.params, &first)?;
        self.steps.push(StepDecl {
            label,
            kernel,
            bindings: bindings.to_vec(),
            launch: Box::new(launch),
        });
        Ok(())
    }

    /// Places activations, creates buffers, pipelines and bind groups.
    pub fn build(self) -> Result<Plan> {
        let gpu = self.gpu.clone();
        // Lifetimes of activations.
        let mut span: Vec<Option<(usize, usize)>> = vec![None; self.tensors.len()];
        for (s, step) in self.steps.iter().enumerate() {
            for t in &step.bindings {
                let e = span[t.0].get_or_insert((s, s));
                e.1 = s;
            }
        }
        let acts: Vec<usize> = (0..self.tensors.len())
            .filter(|&i| self.tensors[i].kind == Kind::Activation)
            .collect();
        let lifetimes: Vec<Lifetime> = acts
            .iter()
            .map(|&i| {
                let (first, last) = span[i].unwrap_or((0, 0));
                Lifetime {
                    bytes: self.tensors[i].bytes.next_multiple_of(4),
                    first,
                    last,
                }
            })
            .collect();
        for t in &self.tensors {
            gpu.check_binding(&t.name, t.bytes)?;
        }
        let placement = arena::place(&lifetimes);
        let (slots, generation) = match &self.arena {
            Some(shared) => shared.fit(&placement.slot_bytes)?,
            None => {
                let mut own = Vec::with_capacity(placement.slot_bytes.len());
                for (s, &bytes) in placement.slot_bytes.iter().enumerate() {
                    own.push(gpu.storage_as(self.memory, &format!("arena slot {s}"), bytes)?);
                }
                (own, 0)
            }
        };
        let mut slot_of: Vec<Option<usize>> = vec![None; self.tensors.len()];
        for (k, &i) in acts.iter().enumerate() {
            slot_of[i] = Some(placement.slot_of[k]);
        }
        let mut buffers: Vec<Option<DeviceBuffer>> = vec![None; self.tensors.len()];
        let mut persistent_bytes = 0u64;
        for (i, t) in self.tensors.iter().enumerate() {
            buffers[i] = match (t.kind, slot_of[i]) {
                (Kind::External, _) => t.external.clone(),
                (Kind::Input | Kind::Output, _) => {
                    persistent_bytes += t.bytes;
                    Some(gpu.storage_as(self.memory, &t.name, t.bytes)?)
                }
                (Kind::Activation, Some(slot)) => slots.get(slot).cloned(),
                (Kind::Activation, None) => None,
            };
        }
        let slot = PARAMS_SLOT.max(gpu.caps().min_uniform_offset_alignment as u64);
        let uniform = gpu.buffer(
            self.memory,
            &wgpu::BufferDescriptor {
                label: Some("plan parameters"),
                size: slot * self.steps.len().max(1) as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            },
        )?;
        let tensors: Vec<PlacedTensor> = self
            .tensors
            .into_iter()
            .zip(buffers)
            .zip(slot_of)
            .map(|((d, buffer), slot)| PlacedTensor {
                name: d.name,
                bytes: d.bytes,
                kind: d.kind,
                buffer,
                slot,
            })
            .collect();
        pipeline::prepare(&gpu, self.steps.iter().map(|d| &d.kernel))?;
        let mut steps = Vec::with_capacity(self.steps.len());
        for (s, decl) in self.steps.into_iter().enumerate() {
            let pipe = pipeline::pipeline(&gpu, &decl.kernel)?;
            let bind_group = bind(&gpu, &uniform, &pipe, &decl.label, &decl.bindings, &tensors)?;
            steps.push(Step {
                label: decl.label,
                family: decl.kernel.shader,
                kernel: decl.kernel.name(),
                params: decl.kernel.params,
                pipeline: pipe,
                bind_group,
                bindings: decl.bindings,
                uniform_offset: (s as u64 * slot) as u32,
                launch: decl.launch,
            });
        }
        Ok(Plan {
            gpu,
            steps,
            tensors,
            uniform,
            slot,
            arena_bytes: placement.total_bytes(),
            persistent_bytes,
            shared: self.arena,
            generation,
            slot_bytes: placement.slot_bytes,
            params: Vec::new(),
            last_sizes: None,
        })
    }
}

/// The bind group of one step: its parameter slot, then its tensors' buffers.
fn bind(
    gpu: &Gpu,
    uniform: &wgpu::Buffer,
    pipe: &CachedPipeline,
    label: &str,
    bindings: &[TensorId],
    tensors: &[PlacedTensor],
) -> Result<wgpu::BindGroup> {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: uniform,
            offset: 0,
            size: NonZeroU64::new(PARAMS_SLOT),
        }),
    }];
    for (j, t) in bindings.iter().enumerate() {
        let tensor = &tensors[t.0];
        let buffer = tensor
            .buffer
            .as_ref()
            .ok_or_else(|| Error::PlanInput(format!("tensor '{}' has no buffer", tensor.name)))?;
        let size = tensor.bytes.max(4).next_multiple_of(4).min(buffer.size());
        entries.push(wgpu::BindGroupEntry {
            binding: j as u32 + 1,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: 0,
                size: NonZeroU64::new(size),
            }),
        });
    }
    gpu.guarded(&format!("binding step '{label}'"), || {
        gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipe.layout,
            entries: &entries,
        })
    })
}

/// Refuses parameter bytes of another size than the kernel declares, or over a slot.
fn check_params(label: &str, kernel: &str, params: Option<u64>, launch: &Launch) -> Result<()> {
    let got = launch.params.len() as u64;
    if got > PARAMS_SLOT {
        return Err(Error::PlanInput(format!(
            "step '{label}': {got} parameter bytes, over {PARAMS_SLOT}"
        )));
    }
    match params {
        Some(want) if want != got => Err(Error::PlanInput(format!(
            "step '{label}': kernel {kernel} takes {want} parameter bytes, the launch gives {got}"
        ))),
        _ => Ok(()),
    }
}

pub(crate) struct Step {
    pub(crate) label: String,
    pub(crate) family: &'static str,
    pub(crate) kernel: String,
    params: Option<u64>,
    pipeline: Arc<CachedPipeline>,
    bind_group: wgpu::BindGroup,
    bindings: Vec<TensorId>,
    uniform_offset: u32,
    launch: LaunchFn,
}

struct PlacedTensor {
    name: String,
    bytes: u64,
    kind: Kind,
    buffer: Option<DeviceBuffer>,
    /// The arena slot of an activation.
    slot: Option<usize>,
}

/// A built plan: run it many times with new inputs.
pub struct Plan {
    gpu: Arc<Gpu>,
    steps: Vec<Step>,
    tensors: Vec<PlacedTensor>,
    uniform: DeviceBuffer,
    slot: u64,
    arena_bytes: u64,
    persistent_bytes: u64,
    /// The arena the activations live in, when shared, and the generation of its slots
    /// that the bind groups hold.
    shared: Option<Arc<SharedArena>>,
    generation: u64,
    /// The size of each slot the activations need.
    slot_bytes: Vec<u64>,
    params: Vec<u8>,
    last_sizes: Option<RunSizes>,
}

impl Plan {
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Bytes of the activation slots this plan needs (in a shared arena, the arena may hold
    /// more for other plans).
    pub fn arena_bytes(&self) -> u64 {
        self.arena_bytes
    }

    /// Peak bytes the plan needs on the device beyond external buffers (weights):
    /// activation slots + inputs + outputs + parameters.
    pub fn peak_bytes(&self) -> u64 {
        self.arena_bytes + self.persistent_bytes + self.uniform.size()
    }

    /// Bytes the plan holds of its own: inputs, outputs, parameters, and its activation
    /// slots unless they are in a shared arena.
    pub fn own_bytes(&self) -> u64 {
        let slots = if self.shared.is_some() {
            0
        } else {
            self.arena_bytes
        };
        slots + self.persistent_bytes + self.uniform.size()
    }

    /// Binds the current slots of its shared arena when another plan has grown them since
    /// (`run` does this first); a no-op otherwise. Gives the plan's hold on the old slots
    /// back.
    pub fn refresh(&mut self) -> Result<()> {
        let Some(shared) = &self.shared else {
            return Ok(());
        };
        if shared.generation() == self.generation {
            return Ok(());
        }
        // Fitting (not just reading) the slots: the arena may have been cleared since.
        let (slots, generation) = shared.fit(&self.slot_bytes)?;
        for t in &mut self.tensors {
            if let Some(s) = t.slot {
                t.buffer = slots.get(s).cloned();
            }
        }
        for step in &mut self.steps {
            step.bind_group = bind(
                &self.gpu,
                &self.uniform,
                &step.pipeline,
                &step.label,
                &step.bindings,
                &self.tensors,
            )?;
        }
        self.generation = generation;
        Ok(())
    }

    pub fn n_steps(&self) -> usize {
        self.steps.len()
    }

    fn tensor(&self, t: TensorId) -> Result<&PlacedTensor> {
        self.tensors
            .get(t.0)
            .ok_or_else(|| Error::PlanInput(format!("unknown tensor #{}", t.0)))
    }

    /// The buffer behind an input or output tensor, for binding into another plan (a head
    /// reading the encoder's output).
    pub fn buffer(&self, t: TensorId) -> Result<&DeviceBuffer> {
        let tensor = self.tensor(t)?;
        match (tensor.kind, &tensor.buffer) {
            (Kind::Input | Kind::Output, Some(b)) => Ok(b),
            _ => Err(Error::PlanInput(format!(
                "'{}' is not an input or output",
                tensor.name
            ))),
        }
    }

    /// Writes host data into an input tensor (at most its declared size).
    pub fn write(&self, t: TensorId, data: &[u8]) -> Result<()> {
        let tensor = self.tensor(t)?;
        if tensor.kind != Kind::Input {
            return Err(Error::PlanInput(format!(
                "'{}' is not an input",
                tensor.name
            )));
        }
        if data.len() as u64 > tensor.bytes {
            return Err(Error::PlanInput(format!(
                "'{}' holds {} bytes, got {}",
                tensor.name,
                tensor.bytes,
                data.len()
            )));
        }
        if let Some(b) = &tensor.buffer {
            self.gpu.write(b, 0, data);
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` of an output tensor (blocking: natively only; see
    /// `Gpu::read`).
    pub fn read(&self, t: TensorId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (name, buffer) = self.output(t, offset, len)?;
        self.gpu.read(name, buffer, offset, len)
    }

    /// Reads `len` bytes at `offset` of an output tensor, without blocking.
    pub async fn read_async(&self, t: TensorId, offset: u64, len: u64) -> Result<Vec<u8>> {
        let (name, buffer) = self.output(t, offset, len)?;
        self.gpu.read_async(name, buffer, offset, len).await
    }

    /// The name and buffer of output `t`, checked to hold `len` bytes at `offset`.
    fn output(&self, t: TensorId, offset: u64, len: u64) -> Result<(&str, &wgpu::Buffer)> {
        let tensor = self.tensor(t)?;
        if tensor.kind != Kind::Output {
            return Err(Error::PlanInput(format!(
                "'{}' is not an output",
                tensor.name
            )));
        }
        if offset + len > tensor.bytes {
            return Err(Error::PlanInput(format!(
                "read of {len} bytes at {offset} past the end of '{}' ({} bytes)",
                tensor.name, tensor.bytes
            )));
        }
        let buffer = tensor
            .buffer
            .as_ref()
            .ok_or_else(|| Error::PlanInput("no buffer".into()))?;
        Ok((&tensor.name, &**buffer))
    }

    /// Evaluates every step's launch for `sizes` and uploads the parameters (skipped when the
    /// sizes equal the previous run's).
    fn prepare(&mut self, sizes: &RunSizes) -> Result<Vec<[u32; 3]>> {
        let max_dim = self.gpu.caps().max_workgroups_per_dim;
        let mut counts = Vec::with_capacity(self.steps.len());
        let fresh = self.last_sizes.as_ref() != Some(sizes);
        if fresh {
            self.params.clear();
            self.params.resize(self.slot as usize * self.steps.len(), 0);
        }
        for (s, step) in self.steps.iter().enumerate() {
            let launch = (step.launch)(sizes);
            check_params(&step.label, &step.kernel, step.params, &launch)?;
            if let Some(d) = launch.workgroups.iter().find(|&&d| d > max_dim) {
                return Err(Error::PlanInput(format!(
                    "step '{}' ({}): {d} workgroups in one dimension, over the device limit {max_dim}",
                    step.label, step.kernel
                )));
            }
            if fresh {
                let at = s * self.slot as usize;
                self.params[at..at + launch.params.len()].copy_from_slice(&launch.params);
            }
            counts.push(launch.workgroups);
        }
        if fresh {
            self.gpu.write(&self.uniform, 0, &self.params);
            self.last_sizes = Some(*sizes);
        }
        Ok(counts)
    }

    /// Runs every step for a batch of `sizes` in one command buffer.
    pub fn run(&mut self, sizes: &RunSizes) -> Result<()> {
        self.refresh()?;
        let counts = self.prepare(sizes)?;
        let gpu = self.gpu.clone();
        gpu.guarded("running a plan", || {
            let mut enc = gpu.device().create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("plan"),
                    timestamp_writes: None,
                });
                for (step, wg) in self.steps.iter().zip(&counts) {
                    if wg.contains(&0) {
                        continue;
                    }
                    pass.set_pipeline(&step.pipeline.pipeline);
                    pass.set_bind_group(0, &step.bind_group, &[step.uniform_offset]);
                    pass.dispatch_workgroups(wg[0], wg[1], wg[2]);
                }
            }
            gpu.queue().submit([enc.finish()]);
        })
    }

    /// Runs like `run`, timing every step with timestamp queries (one pass per step).
    pub fn run_profiled(&mut self, sizes: &RunSizes) -> Result<Profile> {
        if !self.gpu.caps().timestamps {
            return Err(Error::Unsupported(
                "GPU timestamps (TIMESTAMP_QUERY) are not available: no per-kernel times".into(),
            ));
        }
        self.refresh()?;
        let counts = self.prepare(sizes)?;
        profile::run_timed(&self.gpu, &self.steps, &counts, |pass, step| {
            pass.set_pipeline(&step.pipeline.pipeline);
            pass.set_bind_group(0, &step.bind_group, &[step.uniform_offset]);
        })
    }

    /// A human-readable listing: steps with their kernels and buffers, and memory.
    pub fn describe(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "plan: {} steps", self.steps.len());
        for (i, st) in self.steps.iter().enumerate() {
            let _ = writeln!(s, "  {i:4} {:<28} {}", st.label, st.kernel);
        }
        let _ = writeln!(s, "tensors:");
        for t in &self.tensors {
            let _ = writeln!(s, "  {:<32} {:>12} bytes  {:?}", t.name, t.bytes, t.kind);
        }
        let _ = writeln!(
            s,
            "activation arena: {} bytes; inputs/outputs: {} bytes; peak (without weights): {} bytes",
            self.arena_bytes,
            self.persistent_bytes,
            self.peak_bytes()
        );
        if let Some(shared) = &self.shared {
            let _ = writeln!(
                s,
                "activations in a shared arena of {} bytes",
                shared.bytes()
            );
        }
        s
    }
}
