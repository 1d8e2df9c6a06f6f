//! Placement of a plan's activations by lifetime. Each activation lives from the first step
//! that touches it to the last; activations whose lifetimes do not overlap share a buffer
//! ("slot"). Greedy in order of first use, best fit, growing a free slot when none is big
//! enough, so the plan's peak is the sum of its slot sizes.

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
    Placement {
        slot_of,
        slot_bytes,
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
