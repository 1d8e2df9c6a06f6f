//! The packer: `pack` and the streaming `Packer` over arbitrary sequences, capacities and
//! sequence limits (with source errors mixed in). Nothing panics, bad input is an `Err`, and
//! every batch keeps the invariants the kernels rely on: each valid token exactly once and in
//! input order, capacity and `max_seqs` respected, positions restarting at 0 per sequence,
//! `cu_seqlens` consistent with the ids, greedy closing.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wgbert::Error;
use wgbert::text::pack::{PackedBatch, Packer, pack};

#[derive(Debug, Arbitrary)]
enum Limit {
    Small(u8),
    Medium(u16),
    Any(u64),
}

impl Limit {
    fn get(&self) -> usize {
        match *self {
            Limit::Small(n) => usize::from(n),
            Limit::Medium(n) => usize::from(n),
            Limit::Any(n) => n as usize,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Item {
    /// A sequence of `len` tokens (ids derived from `seed`), possibly empty.
    Seq { len: u8, seed: u32 },
    /// Explicit ids.
    Ids(Vec<u32>),
    /// An error from the source (a failed tokenization).
    Fail,
}

#[derive(Debug, Arbitrary)]
struct Input {
    capacity: Limit,
    max_seqs: Limit,
    items: Vec<Item>,
}

fn seq_of(item: &Item) -> Option<Vec<u32>> {
    match item {
        Item::Seq { len, seed } => Some(
            (0..u32::from(*len))
                .map(|i| seed.wrapping_mul(31).wrapping_add(i))
                .collect(),
        ),
        Item::Ids(ids) => Some(ids.clone()),
        Item::Fail => None,
    }
}

/// The per-batch invariants; `seqs` is indexed by input index.
fn check_batch(b: &PackedBatch, seqs: &[Option<Vec<u32>>], capacity: usize, max_seqs: usize) {
    let n = b.n_seqs();
    assert!(n >= 1, "no empty batches");
    assert!(n <= max_seqs, "{n} sequences over max_seqs {max_seqs}");
    assert!(
        b.n_tokens() <= capacity,
        "{} tokens over capacity {capacity}",
        b.n_tokens()
    );
    assert_eq!(b.ids.len(), b.positions.len());
    assert_eq!(b.cu_seqlens.len(), n + 1);
    assert_eq!(b.cu_seqlens[0], 0);
    assert_eq!(*b.cu_seqlens.last().unwrap() as usize, b.n_tokens());
    let mut max_len = 0;
    for i in 0..n {
        let range = b.seq_range(i);
        assert!(range.start < range.end, "sequence {i} is empty");
        let want = seqs[b.indices[i]]
            .as_deref()
            .expect("only valid items are packed");
        assert_eq!(b.seq_ids(i), want, "sequence {i} (input {})", b.indices[i]);
        let positions: Vec<u32> = (0..range.len() as u32).collect();
        assert_eq!(
            &b.positions[range.clone()],
            positions.as_slice(),
            "positions restart"
        );
        max_len = max_len.max(range.len());
    }
    assert_eq!(b.max_seqlen as usize, max_len);
}

fuzz_target!(|input: Input| {
    let capacity = input.capacity.get();
    let max_seqs = input.max_seqs.get();
    let items: Vec<Item> = input.items.into_iter().take(512).collect();
    let seqs: Vec<Option<Vec<u32>>> = items.iter().map(seq_of).collect();
    let limits_ok = capacity >= 1 && u32::try_from(capacity).is_ok() && max_seqs >= 1;
    let valid = |s: &Option<Vec<u32>>| {
        s.as_ref()
            .is_some_and(|s| !s.is_empty() && s.len() <= capacity)
    };

    // `pack`: all valid -> batches covering every sequence in order; else the first bad index.
    let plain: Vec<Vec<u32>> = seqs.iter().map(|s| s.clone().unwrap_or_default()).collect();
    match pack(&plain, capacity, max_seqs) {
        Err(Error::Option(_)) => assert!(!limits_ok),
        Err(Error::Input { index, .. }) => {
            assert!(limits_ok);
            let first_bad = plain
                .iter()
                .position(|s| s.is_empty() || s.len() > capacity);
            assert_eq!(Some(index), first_bad);
        }
        Err(other) => panic!("unexpected error kind: {other:?}"),
        Ok(batches) => {
            assert!(limits_ok);
            assert!(plain.iter().all(|s| !s.is_empty() && s.len() <= capacity));
            let order: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
            assert_eq!(
                order,
                (0..plain.len()).collect::<Vec<_>>(),
                "every sequence once"
            );
            let as_opt: Vec<Option<Vec<u32>>> = plain.iter().cloned().map(Some).collect();
            for (k, b) in batches.iter().enumerate() {
                check_batch(b, &as_opt, capacity, max_seqs);
                // Greedy: the next batch's first sequence did not fit this one.
                if let Some(next) = batches.get(k + 1) {
                    let first = plain[next.indices[0]].len();
                    assert!(b.n_seqs() == max_seqs || b.n_tokens() + first > capacity);
                }
            }
        }
    }

    // `Packer` with source errors: results interleave batches and errors in input order.
    let source = items
        .iter()
        .enumerate()
        .map(|(i, item)| match seq_of(item) {
            Some(s) => Ok((i, s)),
            None => Err(Error::Input {
                index: i,
                message: "source failure".into(),
            }),
        });
    let packer = match Packer::new(source, capacity, max_seqs) {
        Ok(p) => p,
        Err(e) => {
            assert!(!limits_ok, "limits refused: {e}");
            return;
        }
    };
    assert!(limits_ok);
    let mut next_index = 0;
    for result in packer {
        match result {
            Ok(b) => {
                check_batch(&b, &seqs, capacity, max_seqs);
                for &i in &b.indices {
                    // Skipped inputs between packed ones are exactly the invalid ones, which
                    // must have come out as errors already.
                    assert_eq!(i, next_index, "input order");
                    next_index = i + 1;
                }
            }
            Err(Error::Input { index, .. }) => {
                assert_eq!(index, next_index, "errors come in input order");
                assert!(!valid(&seqs[index]), "a valid input was refused");
                next_index = index + 1;
            }
            Err(other) => panic!("unexpected error kind: {other:?}"),
        }
    }
    assert_eq!(next_index, items.len(), "every input accounted for");
});
