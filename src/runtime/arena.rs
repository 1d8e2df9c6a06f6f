//! Placement of a plan's activations by lifetime. Each activation lives from the first step
//! that touches it to the last; activations whose lifetimes do not overlap share a buffer
//! ("slot"). Greedy in order of first use, best fit, growing a free slot when none is big
//! enough, so the plan's peak is the sum of its slot sizes. Slots are numbered largest first.
//!
//! The slots are the plan's own, or those of a [`SharedArena`]: plans that never run at the
//! same time (an encoder's capacity buckets and heads, serialised by its lock) place their
//! activations into one set of slots, slot i as large as the largest slot i of any of them,
//! so together they hold about the largest plan's activations rather than the sum.

use std::sync::{Arc, Mutex};

use crate::runtime::gpu::Gpu;
use crate::runtime::memory::{DeviceBuffer, MemoryKind};
use crate::{Error, Result};

/// One activation's need: bytes and the inclusive step range it is live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub bytes: u64,
    pub first: usize,
    pub last: usize,
}

/// The result: the slot of every activation and each slot's size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub slot_of: Vec<usize>,
    pub slot_bytes: Vec<u64>,
}

impl Placement {
    pub fn total_bytes(&self) -> u64 {
        self.slot_bytes.iter().sum()
    }
}

/// Places activations into shared slots (see the module docs).
pub fn place(lifetimes: &[Lifetime]) -> Placement {
    let mut order: Vec<usize> = (0..lifetimes.len()).collect();
    order.sort_by_key(|&i| (lifetimes[i].first, std::cmp::Reverse(lifetimes[i].bytes)));
    let mut slot_of = vec![0usize; lifetimes.len()];
    let mut slot_bytes: Vec<u64> = Vec::new();
    // The last step at which each slot is busy.
    let mut busy_until: Vec<usize> = Vec::new();
    for &i in &order {
        let need = lifetimes[i];
        let free = (0..slot_bytes.len()).filter(|&s| busy_until[s] < need.first);
        // Best fit: the smallest free slot that is big enough, else the largest free slot
        // (grown), else a new slot.
        let fitting = free
            .clone()
            .filter(|&s| slot_bytes[s] >= need.bytes)
            .min_by_key(|&s| slot_bytes[s]);
        let slot = match fitting.or_else(|| free.max_by_key(|&s| slot_bytes[s])) {
            Some(s) => s,
            None => {
                slot_bytes.push(0);
                busy_until.push(0);
                slot_bytes.len() - 1
            }
        };
        slot_bytes[slot] = slot_bytes[slot].max(need.bytes);
        busy_until[slot] = need.last;
        slot_of[i] = slot;
    }
    // Largest first, so that the big slots of plans sharing an arena line up.
    let mut by_size: Vec<usize> = (0..slot_bytes.len()).collect();
    by_size.sort_by_key(|&s| (std::cmp::Reverse(slot_bytes[s]), s));
    let mut renumber = vec![0usize; slot_bytes.len()];
    for (new, &old) in by_size.iter().enumerate() {
        renumber[old] = new;
    }
    Placement {
        slot_of: slot_of.into_iter().map(|s| renumber[s]).collect(),
        slot_bytes: by_size.iter().map(|&s| slot_bytes[s]).collect(),
    }
}

/// Activation slots shared by plans that never run at the same time (see the module docs).
/// A plan that needs a slot larger than the arena holds reallocates it; the arena's
/// generation then changes, and every plan placed in it binds the new buffers before its
/// next run (`Plan::refresh`), which gives the old ones back. The arena only grows.
pub struct SharedArena {
    gpu: Arc<Gpu>,
    state: Mutex<ArenaState>,
}

#[derive(Default)]
struct ArenaState {
    slots: Vec<DeviceBuffer>,
    generation: u64,
}

impl std::fmt::Debug for SharedArena {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedArena")
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl SharedArena {
    /// An empty arena on `gpu`; its slots are counted as `MemoryKind::Activations`.
    pub fn new(gpu: Arc<Gpu>) -> Arc<SharedArena> {
        Arc::new(SharedArena {
            gpu,
            state: Mutex::new(ArenaState::default()),
        })
    }

    fn state(&self) -> Result<std::sync::MutexGuard<'_, ArenaState>> {
        self.state.lock().map_err(|_| Error::Gpu {
            context: "shared activation arena".into(),
            message: "lock poisoned by an earlier panic".into(),
        })
    }

    /// Grows the slots so that slot i holds at least `sizes[i]` bytes; returns the slots and
    /// the generation they belong to.
    pub(crate) fn fit(&self, sizes: &[u64]) -> Result<(Vec<DeviceBuffer>, u64)> {
        let mut st = self.state()?;
        let mut grown = false;
        for (i, &need) in sizes.iter().enumerate() {
            let have = st.slots.get(i).map_or(0, |b| b.size());
            if have >= need.max(4) {
                continue;
            }
            let name = format!("shared arena slot {i}");
            let buf = self.gpu.storage_as(MemoryKind::Activations, &name, need)?;
            if i < st.slots.len() {
                st.slots[i] = buf;
            } else {
                st.slots.push(buf);
            }
            grown = true;
        }
        if grown {
            st.generation += 1;
        }
        Ok((st.slots.clone(), st.generation))
    }

    /// Gives every slot back (plans placed in it allocate anew when built or refreshed).
    pub fn clear(&self) -> Result<()> {
        let mut st = self.state()?;
        st.slots.clear();
        st.generation += 1;
        Ok(())
    }

    /// Changes each time a slot is reallocated.
    pub fn generation(&self) -> u64 {
        self.state().map_or(0, |st| st.generation)
    }

    /// Bytes of all slots.
    pub fn bytes(&self) -> u64 {
        self.state()
            .map_or(0, |st| st.slots.iter().map(|b| b.size()).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_chain_reuses_two_slots() {
        // x0 -> x1 -> x2 -> x3, each read by the next step only.
        let l: Vec<Lifetime> = (0..4)
            .map(|i| Lifetime {
                bytes: 100,
                first: i,
                last: i + 1,
            })
            .collect();
        let p = place(&l);
        assert_eq!(p.slot_bytes.len(), 2, "{p:?}");
        assert_eq!(p.total_bytes(), 200);
    }

    #[test]
    fn slots_are_numbered_largest_first() {
        let l = [(10, 0, 0), (300, 1, 1), (20, 1, 1), (50, 2, 2)]
            .map(|(bytes, first, last)| Lifetime { bytes, first, last });
        let p = place(&l);
        assert!(p.slot_bytes.windows(2).all(|w| w[0] >= w[1]), "{p:?}");
        assert_eq!(p.slot_bytes[p.slot_of[1]], 300);
    }

    proptest! {
        #[test]
        fn overlapping_lifetimes_never_share(
            raw in proptest::collection::vec((1u64..10_000, 0usize..40, 0usize..10), 0..40)
        ) {
            let l: Vec<Lifetime> = raw
                .iter()
                .map(|&(bytes, first, len)| Lifetime { bytes, first, last: first + len })
                .collect();
            let p = place(&l);
            for (i, a) in l.iter().enumerate() {
                prop_assert!(p.slot_bytes[p.slot_of[i]] >= a.bytes);
                for (j, b) in l.iter().enumerate().skip(i + 1) {
                    let overlap = a.first <= b.last && b.first <= a.last;
                    prop_assert!(!(overlap && p.slot_of[i] == p.slot_of[j]),
                        "{i} and {j} overlap and share slot {}", p.slot_of[i]);
                }
            }
            let naive: u64 = l.iter().map(|a| a.bytes).sum();
            prop_assert!(p.total_bytes() <= naive);
        }
    }
}
