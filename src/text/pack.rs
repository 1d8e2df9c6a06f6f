//! Packing: token sequences laid end to end into batches of at most `capacity_tokens` tokens
//! and `max_seqs` sequences, with no padding (see DESIGN.md, `PackedBatch`).
//!
//! Packing is greedy and keeps input order: a batch closes when the next sequence does not
//! fit, with no look-ahead and no sorting. Sequences therefore come out in input order, batch
//! after batch, and every batch records the input index of each of its sequences so results
//! can be scattered back. [`Packer`] does this lazily over any iterator, holding one batch
//! and at most one sequence at a time, so arbitrarily many texts stream in bounded memory.

use std::ops::Range;

use crate::{Error, Result};

/// Sequences laid end to end, as the kernels read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedBatch {
    /// Token ids of all sequences, `[T]`.
    pub ids: Vec<u32>,
    /// Position of each token within its own sequence, `[T]`, restarting at 0.
    pub positions: Vec<u32>,
    /// Sequence boundaries, `[B + 1]`: `0, l0, l0 + l1, ..., T`.
    pub cu_seqlens: Vec<u32>,
    /// Keys per sequence, `[B]`: attention looks only at the first `key_lens[s]` tokens of
    /// sequence s (all of them but for [`PackedBatch::limit_keys`]).
    pub key_lens: Vec<u32>,
    /// Length of the longest sequence (0 for an empty batch).
    pub max_seqlen: u32,
    /// Input index of each sequence, `[B]`.
    pub indices: Vec<usize>,
}

impl Default for PackedBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl PackedBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self {
            ids: Vec::new(),
            positions: Vec::new(),
            cu_seqlens: vec![0],
            key_lens: Vec::new(),
            max_seqlen: 0,
            indices: Vec::new(),
        }
    }

    /// Appends one sequence, recording `index` as its input index. Empty sequences and
    /// batches past `u32::MAX` tokens are refused.
    pub fn push(&mut self, index: usize, seq: &[u32]) -> Result<()> {
        if seq.is_empty() {
            return Err(Error::Input {
                index,
                message: "empty token sequence".into(),
            });
        }
        let too_long = || Error::Input {
            index,
            message: format!("{} tokens do not fit a batch's u32 offsets", seq.len()),
        };
        let len = u32::try_from(seq.len()).map_err(|_| too_long())?;
        let end = u32::try_from(self.ids.len() + seq.len()).map_err(|_| too_long())?;
        self.ids.extend_from_slice(seq);
        self.positions.extend(0..len);
        self.cu_seqlens.push(end);
        self.key_lens.push(len);
        self.max_seqlen = self.max_seqlen.max(len);
        self.indices.push(index);
        Ok(())
    }

    /// Makes only the first `keys` tokens of sequence `i` (at least 1, at most all) keys of
    /// the attention; the others still attend to them (PyLate's query expansion tokens when
    /// `attend_to_expansion_tokens` is false).
    ///
    /// Panics if `i >= self.n_seqs()`.
    pub fn limit_keys(&mut self, i: usize, keys: usize) {
        let len = self.seq_range(i).len();
        self.key_lens[i] = keys.clamp(1, len) as u32;
    }

    /// Total number of tokens `T`.
    pub fn n_tokens(&self) -> usize {
        self.ids.len()
    }

    /// Number of sequences `B`.
    pub fn n_seqs(&self) -> usize {
        self.indices.len()
    }

    /// True when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Token rows of sequence `i` (its position in this batch, not its input index).
    ///
    /// Panics if `i >= self.n_seqs()`, like slice indexing.
    pub fn seq_range(&self, i: usize) -> Range<usize> {
        self.cu_seqlens[i] as usize..self.cu_seqlens[i + 1] as usize
    }

    /// Token ids of sequence `i`.
    ///
    /// Panics if `i >= self.n_seqs()`.
    pub fn seq_ids(&self, i: usize) -> &[u32] {
        &self.ids[self.seq_range(i)]
    }
}

/// Streams batches out of an iterator of `(input index, token ids)`.
///
/// Items are `Result`s so that a fallible source (tokenizing on the fly) can pass its errors
/// through. An error from the source, an empty sequence, or a sequence longer than the
/// capacity is yielded as an `Err` in its place: the batch built so far is yielded first,
/// and packing goes on after it, so a caller may stop at the first error or skip bad inputs.
pub struct Packer<I: Iterator> {
    source: I,
    capacity_tokens: usize,
    max_seqs: usize,
    /// The item that closed the previous batch: it goes first into the next one.
    pending: Option<I::Item>,
}

impl<I, S> Packer<I>
where
    I: Iterator<Item = Result<(usize, S)>>,
    S: AsRef<[u32]>,
{
    /// A packer for batches of at most `capacity_tokens` tokens and `max_seqs` sequences.
    pub fn new(
        source: impl IntoIterator<IntoIter = I>,
        capacity_tokens: usize,
        max_seqs: usize,
    ) -> Result<Self> {
        check_limits(capacity_tokens, max_seqs)?;
        Ok(Self {
            source: source.into_iter(),
            capacity_tokens,
            max_seqs,
            pending: None,
        })
    }

    /// The token capacity of a batch.
    pub fn capacity_tokens(&self) -> usize {
        self.capacity_tokens
    }

    /// The sequence capacity of a batch.
    pub fn max_seqs(&self) -> usize {
        self.max_seqs
    }

    fn check(&self, item: Result<(usize, S)>) -> Result<(usize, S)> {
        let (index, seq) = item?;
        let len = seq.as_ref().len();
        if len == 0 {
            return Err(Error::Input {
                index,
                message: "empty token sequence".into(),
            });
        }
        if len > self.capacity_tokens {
            return Err(Error::Input {
                index,
                message: format!(
                    "sequence of {len} tokens is longer than the batch capacity of {} tokens \
                     (raise --max-tokens)",
                    self.capacity_tokens
                ),
            });
        }
        Ok((index, seq))
    }
}

impl<I, S> Iterator for Packer<I>
where
    I: Iterator<Item = Result<(usize, S)>>,
    S: AsRef<[u32]>,
{
    type Item = Result<PackedBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut batch = PackedBatch::new();
        while let Some(item) = self.pending.take().or_else(|| self.source.next()) {
            match self.check(item) {
                Err(e) if batch.is_empty() => return Some(Err(e)),
                Err(e) => {
                    self.pending = Some(Err(e));
                    break;
                }
                Ok((index, seq)) => {
                    let seq_ref = seq.as_ref();
                    let full = batch.n_seqs() == self.max_seqs
                        || batch.n_tokens() + seq_ref.len() > self.capacity_tokens;
                    if full {
                        self.pending = Some(Ok((index, seq)));
                        break;
                    }
                    if let Err(e) = batch.push(index, seq_ref) {
                        return Some(Err(e));
                    }
                }
            }
        }
        (!batch.is_empty()).then_some(Ok(batch))
    }
}

/// Packs all `seqs` (input index = position in the slice) into batches, in input order; the
/// first bad sequence is an error naming its index. See [`Packer`] for the streaming form.
pub fn pack<S: AsRef<[u32]>>(
    seqs: &[S],
    capacity_tokens: usize,
    max_seqs: usize,
) -> Result<Vec<PackedBatch>> {
    let source = seqs.iter().enumerate().map(|(i, s)| Ok((i, s.as_ref())));
    Packer::new(source, capacity_tokens, max_seqs)?.collect()
}

fn check_limits(capacity_tokens: usize, max_seqs: usize) -> Result<()> {
    if capacity_tokens == 0 || u32::try_from(capacity_tokens).is_err() {
        return Err(Error::Option(format!(
            "batch capacity of {capacity_tokens} tokens; it must be between 1 and {}",
            u32::MAX
        )));
    }
    if max_seqs == 0 {
        return Err(Error::Option(
            "a batch must allow at least 1 sequence".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Result;

    fn input_err(e: Error) -> (usize, String) {
        match e {
            Error::Input { index, message } => (index, message),
            other => panic!("expected Error::Input, got {other:?}"),
        }
    }

    #[test]
    fn pack_example() -> Result<()> {
        let seqs = vec![vec![1, 2, 3], vec![4, 5], vec![6, 7, 8, 9], vec![10]];
        let batches = pack(&seqs, 5, 8)?;
        assert_eq!(batches.len(), 2);
        let b = &batches[0];
        assert_eq!(b.ids, [1, 2, 3, 4, 5]);
        assert_eq!(b.positions, [0, 1, 2, 0, 1]);
        assert_eq!(b.cu_seqlens, [0, 3, 5]);
        assert_eq!((b.max_seqlen, b.n_tokens(), b.n_seqs()), (3, 5, 2));
        assert_eq!(b.indices, [0, 1]);
        assert_eq!((b.seq_range(1), b.seq_ids(1)), (3..5, &[4, 5][..]));
        assert_eq!(
            batches[1].indices,
            [2, 3],
            "greedy: [10] joins the 4-token batch"
        );
        let capped = pack(&seqs, 100, 2)?;
        let per: Vec<_> = capped.iter().map(|b| b.indices.clone()).collect();
        assert_eq!(per, [vec![0, 1], vec![2, 3]], "max_seqs closes batches");
        Ok(())
    }

    #[test]
    fn pack_errors_name_the_input() {
        let (index, message) = input_err(pack(&[vec![1], vec![1; 9]], 8, 4).unwrap_err());
        assert_eq!(index, 1);
        assert!(
            message.contains("9 tokens") && message.contains("capacity of 8"),
            "{message}"
        );
        let (index, message) = input_err(pack(&[vec![1], vec![]], 8, 4).unwrap_err());
        assert_eq!(index, 1);
        assert!(message.contains("empty"), "{message}");
        assert!(matches!(pack(&[vec![1]], 0, 4), Err(Error::Option(_))));
        assert!(matches!(pack(&[vec![1]], 4, 0), Err(Error::Option(_))));
        assert!(pack::<Vec<u32>>(&[], 4, 4).unwrap().is_empty());
    }

    #[test]
    fn packer_streams_and_passes_errors_through() {
        let source = vec![
            Ok((10, vec![1, 2])),
            Ok((11, vec![3])),
            Err(Error::Input {
                index: 12,
                message: "bad text".into(),
            }),
            Ok((13, vec![4, 5, 6])),
            Ok((14, vec![])),
            Ok((15, vec![7])),
        ];
        let out: Vec<_> = Packer::new(source, 4, 8).unwrap().collect();
        let shape: Vec<_> = out
            .iter()
            .map(|r| match r {
                Ok(b) => Ok(b.indices.clone()),
                Err(e) => Err(input_err_ref(e)),
            })
            .collect();
        let want = vec![
            Ok(vec![10, 11]),
            Err(12),
            Ok(vec![13]),
            Err(14),
            Ok(vec![15]),
        ];
        assert_eq!(
            shape, want,
            "the batch so far comes first, then the error, then the rest"
        );
    }

    fn input_err_ref(e: &Error) -> usize {
        match e {
            Error::Input { index, .. } => *index,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn packer_is_lazy() {
        // An endless source: the packer must pull only what one batch needs.
        let source = (0..).map(|i| Ok::<_, Error>((i, vec![i as u32 + 1; 1 + i % 5])));
        let mut packer = Packer::new(source, 16, 1024).unwrap();
        let mut next = 0;
        for batch in packer.by_ref().take(1000) {
            let batch = batch.unwrap();
            assert_eq!(batch.indices[0], next);
            next = *batch.indices.last().unwrap() + 1;
        }
    }
}
