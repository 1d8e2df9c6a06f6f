//! GPU time per step and per kernel family from timestamp queries: each step runs in its own
//! compute pass with a timestamp at its start and end.

use std::collections::BTreeMap;

use crate::runtime::gpu::Gpu;
use crate::runtime::memory::MemoryKind;
use crate::runtime::plan::Step;
use crate::{Error, Result};

/// Queries per query set (wgpu's cap is 4096).
const QUERIES_PER_SET: u32 = 4096;

/// GPU time of one step.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTime {
    pub label: String,
    pub family: String,
    pub kernel: String,
    pub ns: f64,
}

/// Times of one profiled run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Profile {
    pub steps: Vec<StepTime>,
}

impl Profile {
    /// Sum of all step times.
    pub fn total_ns(&self) -> f64 {
        self.steps.iter().map(|s| s.ns).sum()
    }

    /// (family, total ns, steps) sorted by time, largest first.
    pub fn by_family(&self) -> Vec<(String, f64, usize)> {
        let mut m: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for s in &self.steps {
            let e = m.entry(&s.family).or_default();
            e.0 += s.ns;
            e.1 += 1;
        }
        let mut v: Vec<(String, f64, usize)> = m
            .into_iter()
            .map(|(k, (ns, n))| (k.to_string(), ns, n))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }

    /// Adds the times of another run of the same plan (for averaging).
    pub fn accumulate(&mut self, other: &Profile) {
        if self.steps.is_empty() {
            self.steps = other.steps.clone();
            return;
        }
        for (a, b) in self.steps.iter_mut().zip(&other.steps) {
            a.ns += b.ns;
        }
    }

    /// Divides every time by `n`.
    pub fn scale(&mut self, n: f64) {
        for s in &mut self.steps {
            s.ns /= n;
        }
    }
}

pub(crate) fn run_timed(
    gpu: &Gpu,
    steps: &[Step],
    counts: &[[u32; 3]],
    bind: impl Fn(&mut wgpu::ComputePass<'_>, &Step),
) -> Result<Profile> {
    let n = steps.len() as u32;
    let per_set = QUERIES_PER_SET / 2;
    let n_sets = n.div_ceil(per_set).max(1);
    let sets: Vec<wgpu::QuerySet> = (0..n_sets)
        .map(|_| {
            gpu.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("step timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: QUERIES_PER_SET,
            })
        })
        .collect();
    let resolve_bytes = (n_sets * QUERIES_PER_SET) as u64 * 8;
    let resolve = gpu.buffer(
        MemoryKind::Other,
        &wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: resolve_bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        },
    )?;
    gpu.guarded("running a profiled plan", || {
        let mut enc = gpu.device().create_command_encoder(&Default::default());
        for (i, (step, wg)) in steps.iter().zip(counts).enumerate() {
            let set = &sets[i / per_set as usize];
            let q = (i as u32 % per_set) * 2;
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&step.label),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(q),
                    end_of_pass_write_index: Some(q + 1),
                }),
            });
            if !wg.contains(&0) {
                bind(&mut pass, step);
                pass.dispatch_workgroups(wg[0], wg[1], wg[2]);
            }
        }
        for (k, set) in sets.iter().enumerate() {
            let used = (n - k as u32 * per_set).min(per_set) * 2;
            enc.resolve_query_set(
                set,
                0..used,
                &resolve,
                k as u64 * QUERIES_PER_SET as u64 * 8,
            );
        }
        gpu.queue().submit([enc.finish()]);
    })?;
    let raw = gpu.read("timestamps", &resolve, 0, resolve_bytes)?;
    let ticks: &[u64] = bytemuck::try_cast_slice(&raw).map_err(|e| Error::Readback {
        what: "timestamps".into(),
        message: e.to_string(),
    })?;
    let period = gpu.queue().get_timestamp_period() as f64;
    let times = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let base =
                (i / per_set as usize) * QUERIES_PER_SET as usize + (i % per_set as usize) * 2;
            let ns = ticks[base + 1].saturating_sub(ticks[base]) as f64 * period;
            StepTime {
                label: step.label.clone(),
                family: step.family.to_string(),
                kernel: step.kernel.clone(),
                ns,
            }
        })
        .collect();
    Ok(Profile { steps: times })
}
