//! Device memory the runtime allocated. Every buffer `Gpu` creates is a [`DeviceBuffer`]
//! counted under a [`MemoryKind`] from its creation until its last handle drops, so
//! `Gpu::memory` tells what is held now, by kind, and the most ever held at once. The figures
//! are the bytes asked of wgpu (rounded to 4); drivers may round them up further.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MemoryKind {
    /// Model weights.
    Weights,
    /// Plans' activations, inputs, outputs and parameters.
    Activations,
    /// Head plans' own inputs, outputs and parameters (their temporaries are activations).
    Heads,
    /// Anything else: readback staging, timing queries, self-checks, tuning, tests.
    Other,
}

impl MemoryKind {
    /// Every kind, in report order.
    pub const ALL: [MemoryKind; 4] = [
        MemoryKind::Weights,
        MemoryKind::Activations,
        MemoryKind::Heads,
        MemoryKind::Other,
    ];

    /// The lower-case name (a metrics label, a JSON key).
    pub fn name(self) -> &'static str {
        match self {
            MemoryKind::Weights => "weights",
            MemoryKind::Activations => "activations",
            MemoryKind::Heads => "heads",
            MemoryKind::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Device bytes held by the runtime's buffers: now in total, the most at any moment since
/// the device was created (or since `Gpu::reset_peak`), and now per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryStats {
    pub current: u64,
    pub peak: u64,
    pub weights: u64,
    pub activations: u64,
    pub heads: u64,
    pub other: u64,
}

impl MemoryStats {
    /// The bytes held now of one kind.
    pub fn of(&self, kind: MemoryKind) -> u64 {
        match kind {
            MemoryKind::Weights => self.weights,
            MemoryKind::Activations => self.activations,
            MemoryKind::Heads => self.heads,
            MemoryKind::Other => self.other,
        }
    }
}

/// The counters behind `Gpu::memory`; shared with every buffer so a drop on any thread
/// gives its bytes back.
#[derive(Debug, Default)]
pub(crate) struct MemoryCounter {
    by_kind: [AtomicU64; 4],
    current: AtomicU64,
    peak: AtomicU64,
}

impl MemoryCounter {
    fn add(&self, kind: MemoryKind, bytes: u64) {
        self.by_kind[kind.index()].fetch_add(bytes, Ordering::Relaxed);
        let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }

    fn sub(&self, kind: MemoryKind, bytes: u64) {
        self.by_kind[kind.index()].fetch_sub(bytes, Ordering::Relaxed);
        self.current.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> MemoryStats {
        let k = |kind: MemoryKind| self.by_kind[kind.index()].load(Ordering::Relaxed);
        MemoryStats {
            current: self.current.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::Relaxed),
            weights: k(MemoryKind::Weights),
            activations: k(MemoryKind::Activations),
            heads: k(MemoryKind::Heads),
            other: k(MemoryKind::Other),
        }
    }

    pub(crate) fn reset_peak(&self) {
        self.peak
            .store(self.current.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

struct Tracked {
    buffer: wgpu::Buffer,
    kind: MemoryKind,
    bytes: u64,
    counter: Option<Arc<MemoryCounter>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if let Some(c) = &self.counter {
            c.sub(self.kind, self.bytes);
        }
    }
}

/// A device buffer and its place in the memory count: cloning shares it, and its bytes are
/// given back when the last clone drops. Dereferences to the `wgpu::Buffer`.
#[derive(Clone)]
pub struct DeviceBuffer(Arc<Tracked>);

impl DeviceBuffer {
    pub(crate) fn counted(
        buffer: wgpu::Buffer,
        kind: MemoryKind,
        counter: &Arc<MemoryCounter>,
    ) -> Self {
        let bytes = buffer.size();
        counter.add(kind, bytes);
        DeviceBuffer(Arc::new(Tracked {
            buffer,
            kind,
            bytes,
            counter: Some(counter.clone()),
        }))
    }

    /// A buffer the host application created and owns (not counted).
    pub fn foreign(buffer: wgpu::Buffer) -> Self {
        DeviceBuffer(Arc::new(Tracked {
            kind: MemoryKind::Other,
            bytes: buffer.size(),
            buffer,
            counter: None,
        }))
    }

    /// The kind it is counted under.
    pub fn kind(&self) -> MemoryKind {
        self.0.kind
    }
}

impl std::ops::Deref for DeviceBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.0.buffer
    }
}

impl std::fmt::Debug for DeviceBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceBuffer")
            .field("bytes", &self.0.bytes)
            .field("kind", &self.0.kind)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_stays_and_kinds_add_up() {
        let c = MemoryCounter::default();
        c.add(MemoryKind::Weights, 100);
        c.add(MemoryKind::Activations, 50);
        c.sub(MemoryKind::Activations, 50);
        c.add(MemoryKind::Heads, 10);
        let s = c.stats();
        assert_eq!((s.current, s.peak), (110, 150));
        assert_eq!(
            (s.weights, s.activations, s.heads, s.other),
            (100, 0, 10, 0)
        );
        c.reset_peak();
        assert_eq!(c.stats().peak, 110);
    }
}
