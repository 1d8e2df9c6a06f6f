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
        self.max_seqlen = self.max_seqlen.max(len);
        self.indices.push(index);
        Ok(())
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
                    "sequence of {len} tokens is longer than the batch capacity of {} tokens",
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
