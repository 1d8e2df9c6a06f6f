//! Fill-mask's filled-in sequences without decoding the whole sequence per candidate.
//!
//! A sequence's text around its masks is decoded once; each candidate then costs the
//! decoding of its one token and a copy of that text. How the decoded pieces join (side by
//! side for byte-level and most decoders, with spaces for a tokenizer without a decoder) is
//! checked once per sequence against the tokenizer's own decoding of the first candidate,
//! which is used instead wherever the two could differ: a piece or a token that decodes to
//! part of a character, or a tokenizer neither join reproduces.

use super::TextTokenizer;
use crate::Result;

/// How the decoded pieces of a sequence join into its decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Join {
    /// Side by side (byte-level and most decoders).
    Concat,
    /// With one space between non-empty pieces (a tokenizer without a decoder).
    Space,
    /// Neither reproduces the tokenizer: decode every filled sequence whole.
    Whole,
}

/// A sequence's text around its masks, decoded once: `pieces[j]` is the decoding of the
/// tokens between mask `j - 1` and mask `j` (the masks, special tokens, decode to
/// nothing). [`Splice::filled`] gives the sequence with one mask filled by a candidate.
pub struct Splice {
    /// Unknown until the first candidate is checked against the tokenizer's decoding.
    join: std::cell::Cell<Option<Join>>,
    pieces: Vec<String>,
    positions: Vec<usize>,
}

impl Splice {
    pub fn new(tok: &TextTokenizer, seq: &[u32], positions: &[usize]) -> Result<Splice> {
        let mut sorted = positions.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut pieces = Vec::with_capacity(sorted.len() + 1);
        let mut start = 0;
        for &p in &sorted {
            pieces.push(tok.decode(seq.get(start..p).unwrap_or_default())?);
            start = p + 1;
        }
        pieces.push(tok.decode(seq.get(start..).unwrap_or_default())?);
        // A piece cut inside a character cannot be joined back by text.
        let split_char = pieces.iter().any(|p| p.contains('\u{fffd}'));
        Ok(Splice {
            join: std::cell::Cell::new(split_char.then_some(Join::Whole)),
            pieces,
            positions: sorted,
        })
    }

    /// The pieces with `token` at the mask at `position`, joined as `join` says.
    fn compose(&self, join: Join, position: usize, token: &str) -> String {
        let at = self.positions.partition_point(|&p| p < position);
        let at = at.min(self.pieces.len() - 1);
        let parts = self.pieces[..=at]
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(token))
            .chain(self.pieces[at + 1..].iter().map(String::as_str));
        match join {
            Join::Space => parts
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            _ => parts.collect(),
        }
    }

    /// The sequence with the mask at `position` filled by `id` (decoded: `token`).
    pub fn filled(
        &self,
        tok: &TextTokenizer,
        seq: &[u32],
        position: usize,
        id: u32,
        token: &str,
    ) -> Result<String> {
        // A token that decodes to part of a character only joins on bytes: whole decoding.
        let partial = token.is_empty() || token.contains('\u{fffd}');
        match self.join.get() {
            Some(join @ (Join::Concat | Join::Space)) if !partial => {
                return Ok(self.compose(join, position, token));
            }
            _ => {}
        }
        let mut filled = seq.to_vec();
        if let Some(slot) = filled.get_mut(position) {
            *slot = id;
        }
        let whole = tok.decode(&filled)?;
        if self.join.get().is_none() && !partial {
            // The first candidate decides how the pieces join, for every other one.
            let join = [Join::Concat, Join::Space]
                .into_iter()
                .find(|&j| self.compose(j, position, token) == whole)
                .unwrap_or(Join::Whole);
            self.join.set(Some(join));
        }
        Ok(whole)
    }
}
