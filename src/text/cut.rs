//! Inputs over the model's limit, cut by the one rule every front end shares (the library's
//! tasks, the CLI, the server and the Python package all tokenize through here).
//!
//! A text is tokenized whole without special tokens, cut, and then framed by the tokenizer's
//! post-processor (`[CLS] .. [SEP]`), so an input within the limit gets exactly the
//! tokenizer's own ids. `Right` keeps the start of a text, `Left` its end; with neither, an
//! input over the limit is an `Error::Input` naming it.
//!
//! A prompt is tokenized together with its text, as sentence-transformers does (the tokens
//! where they meet are the same), and stays whole under truncation: only the text's tokens
//! are cut. Cut from the right, the joined tokens keep their start (sentence-transformers'
//! tokens exactly). Cut from the left, the prompt's own tokens (as the prompt alone
//! tokenizes, which is what sentence-transformers counts as the prompt's length) come first
//! and the text's end follows, so a pooling that leaves the prompt out skips exactly the
//! prompt's tokens. sentence-transformers cuts the joined string instead: with
//! `truncation_side="left"` it cuts the prompt away, and its pooling then skips as many
//! tokens of real text. The two agree whenever nothing is cut from the left of a prompted
//! text.
//!
//! Pairs lose tokens from the longer side first (the tokenizer's `LongestFirst`); prompts are
//! not used with pairs.
//!
//! A text of more than [`CHARS_PER_TOKEN`] characters per token of the limit is cut (or
//! refused) before it is tokenized, as text-embeddings-inference does. Below that, a text
//! longer than [`FIRST_READ`] characters per token of the limit is tokenized a part at a
//! time, from the side that is kept, each part ending (or, from the left, starting) at a
//! word boundary, until the part holds more tokens than are kept: the tokens kept are the
//! whole text's (tokenizers split text into words before their model sees it, and a word
//! boundary splits no word), and one long text costs the tokenizer work and memory for
//! about what the limit keeps, not for the whole text. (Token offsets of a text cut this
//! way are relative to the part that was read.)

use std::borrow::Cow;

use tokenizers::utils::truncation::truncate_encodings;
use tokenizers::{
    Encoding, PostProcessor, TruncationDirection, TruncationParams, TruncationStrategy,
};

use super::tokenizer::{Encoded, TextTokenizer, TruncationSide};
use crate::{Error, Result};

/// Characters per token of the limit past which a text is cut (or refused) before it is
/// tokenized.
pub const CHARS_PER_TOKEN: usize = 250;

/// Characters per token of the limit read first from a longer text; each further read
/// takes four times as many.
pub const FIRST_READ: usize = 16;

/// What an input over the limit is told.
pub const OFF: &str = "truncation is off; --truncate or \"truncate\": true cuts it";

/// Tokens past the limit a part must hold before it is taken as long enough.
const MARGIN: usize = 8;

/// The byte index of the start of a whitespace run at or before char `k` (and after char
/// `k / 2`): `text[..i]` ends a word.
fn word_end(text: &str, k: usize) -> Option<usize> {
    let end = text.char_indices().nth(k).map_or(text.len(), |(i, _)| i);
    let floor = text.char_indices().nth(k / 2).map_or(0, |(i, _)| i);
    let head = &text[..end];
    let mut prev_space = true;
    let mut best = None;
    for (i, c) in head.char_indices() {
        let space = c.is_whitespace();
        if space && !prev_space && i >= floor {
            best = Some(i);
        }
        prev_space = space;
    }
    best
}

/// The byte index of the last whitespace of a run, k chars or fewer from the end (and more
/// than k / 2): `text[i..]` is a space and then a word.
fn word_start(text: &str, k: usize) -> Option<usize> {
    let n = text.chars().count();
    let start = text
        .char_indices()
        .nth(n.saturating_sub(k))
        .map_or(0, |(i, _)| i);
    let ceil = text
        .char_indices()
        .nth(n.saturating_sub(k / 2))
        .map_or(text.len(), |(i, _)| i);
    let mut it = text[start..].char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let next_word = it.peek().is_some_and(|(_, d)| !d.is_whitespace());
        if c.is_whitespace() && next_word && start + i <= ceil {
            return Some(start + i);
        }
    }
    None
}

/// `prompt` before `text`, as sentence-transformers joins them.
pub fn prompted<'t>(prompt: &str, text: &'t str) -> Cow<'t, str> {
    match prompt {
        "" => Cow::Borrowed(text),
        p => Cow::Owned(format!("{p}{text}")),
    }
}

fn direction(side: TruncationSide) -> TruncationDirection {
    match side {
        TruncationSide::Left => TruncationDirection::Left,
        TruncationSide::Right => TruncationDirection::Right,
    }
}

/// Cuts `e` to `keep` tokens from `side` and drops the cut part (the tokenizer keeps it as
/// "overflowing" encodings otherwise).
fn keep(e: &mut Encoding, keep: usize, side: TruncationSide) {
    e.truncate(keep, 0, direction(side));
    e.take_overflowing();
}

fn too_long(index: usize, what: &str, n: usize, max: usize) -> Error {
    Error::Input {
        index,
        message: format!("{what} has {n} tokens, over the model's limit of {max} ({OFF})"),
    }
}

impl TextTokenizer {
    /// Special tokens the post-processor adds to one text (`pair: false`) or a pair.
    fn added(&self, pair: bool) -> usize {
        self.inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(pair))
    }

    /// `text`, or its first (`Right`) or last (`Left`) `max` characters where a limit is set
    /// and it is longer than `CHARS_PER_TOKEN` characters per token of it.
    fn bounded<'t>(
        &self,
        text: &'t str,
        cut: Option<TruncationSide>,
        limit: Option<usize>,
        index: usize,
        share: usize,
    ) -> Result<&'t str> {
        let Some(max_len) = limit else {
            return Ok(text);
        };
        let max = max_len.saturating_mul(CHARS_PER_TOKEN) / share.max(1);
        if text.len() <= max {
            return Ok(text);
        }
        let chars = text.chars().count();
        if chars <= max {
            return Ok(text);
        }
        match cut {
            None => Err(Error::Input {
                index,
                message: format!(
                    "the text has {chars} characters, more than the model's limit of \
                     {max_len} tokens can hold ({OFF})"
                ),
            }),
            Some(TruncationSide::Right) => {
                let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
                Ok(&text[..end])
            }
            Some(TruncationSide::Left) => {
                let start = text.char_indices().nth(chars - max).map_or(0, |(i, _)| i);
                Ok(&text[start..])
            }
        }
    }

    /// The content tokens of a part of `text` long enough to hold more than `room` tokens:
    /// its start (`Right`, after `prompt`) or its end (`Left`, without the prompt), cut at a
    /// word boundary. `None` where the whole text has to be read.
    fn part(
        &self,
        prompt: &str,
        text: &str,
        room: usize,
        side: TruncationSide,
        index: usize,
    ) -> Result<Option<Encoding>> {
        let mut k = room.saturating_mul(FIRST_READ);
        while k < text.len() {
            let piece = match side {
                TruncationSide::Right => word_end(text, k).map(|i| prompted(prompt, &text[..i])),
                TruncationSide::Left => word_start(text, k).map(|i| Cow::Borrowed(&text[i..])),
            };
            let Some(piece) = piece else {
                return Ok(None);
            };
            let e = self.raw(&piece, false, index)?;
            if e.len() > room + MARGIN {
                return Ok(Some(e));
            }
            k = k.saturating_mul(4);
        }
        Ok(None)
    }

    /// Frames content tokens with the post-processor's special tokens.
    fn framed(&self, a: Encoding, b: Option<Encoding>, index: usize) -> Result<Encoded> {
        let e = self
            .inner
            .post_process(a, b, true)
            .map_err(|e| Error::Input {
                index,
                message: format!("tokenizing failed: {e}"),
            })?;
        Ok(Encoded {
            ids: e.get_ids().to_vec(),
            offsets: e.get_offsets().to_vec(),
        })
    }

    /// Tokenizes `prompt` + `text` as `[CLS] prompt text [SEP]`. Over the limit it is cut
    /// from `cut`'s side, the prompt kept whole (see the module's documentation), or refused
    /// when `cut` is `None`. `index` names the text in errors.
    pub fn encode_prompted(
        &self,
        prompt: Option<&str>,
        text: &str,
        cut: Option<TruncationSide>,
        index: usize,
    ) -> Result<Encoded> {
        self.encode_prompted_within(prompt, text, cut, self.max_len, index)
    }

    /// [`TextTokenizer::encode_prompted`] held to `limit` tokens instead of the model's
    /// (a batch capacity below it).
    pub fn encode_prompted_within(
        &self,
        prompt: Option<&str>,
        text: &str,
        cut: Option<TruncationSide>,
        limit: Option<usize>,
        index: usize,
    ) -> Result<Encoded> {
        let prompt = prompt.unwrap_or("");
        let text = self.bounded(text, cut, limit, index, 1)?;
        let added = self.added(false);
        let room = limit.map(|m| m.saturating_sub(added));
        if let Some(room) = room {
            // A long text: read only the part the limit keeps (or enough to refuse it).
            let side = cut.unwrap_or(TruncationSide::Right);
            if let Some(part) = self.part(prompt, text, room, side, index)? {
                return self.cut_part(prompt, part, room, cut, index);
            }
        }
        let joined = prompted(prompt, text);
        let mut content = self.raw(&joined, false, index)?;
        let Some(max) = limit else {
            return self.framed(content, None, index);
        };
        let room = max.saturating_sub(added);
        let n = content.len();
        if n <= room {
            return self.framed(content, None, index);
        }
        let Some(side) = cut else {
            return Err(too_long(index, "text", n + added, max));
        };
        if side == TruncationSide::Left && !prompt.is_empty() {
            let tail = self.raw(text, false, index)?;
            return self.prompt_and_end(prompt, tail, room, max, index);
        }
        keep(&mut content, room, side);
        self.framed(content, None, index)
    }

    /// `[CLS] prompt end [SEP]`: the prompt's own tokens, whole, then as many of the last
    /// tokens of `text` (its content tokens, or those of its end) as fit in `room`.
    fn prompt_and_end(
        &self,
        prompt: &str,
        mut text: Encoding,
        room: usize,
        max: usize,
        index: usize,
    ) -> Result<Encoded> {
        let mut head = self.raw(prompt, false, index)?;
        if head.len() >= room {
            return Err(Error::Input {
                index,
                message: format!(
                    "the prompt has {} tokens, which leaves no room for text within the \
                     model's limit of {max}",
                    head.len()
                ),
            });
        }
        keep(&mut text, room - head.len(), TruncationSide::Left);
        head.merge_with(text, false);
        self.framed(head, None, index)
    }

    /// Cuts a text whose `part` (see [`TextTokenizer::part`]) already holds more than
    /// `room` tokens.
    fn cut_part(
        &self,
        prompt: &str,
        mut part: Encoding,
        room: usize,
        cut: Option<TruncationSide>,
        index: usize,
    ) -> Result<Encoded> {
        let max = room + self.added(false);
        let side = match cut {
            None => {
                let message = format!(
                    "text has more than {} tokens, over the model's limit of {max} ({OFF})",
                    part.len()
                );
                return Err(Error::Input { index, message });
            }
            Some(side) => side,
        };
        if side == TruncationSide::Right || prompt.is_empty() {
            // `Right`: the part is the prompt and the text's start; `Left`: the text's end.
            keep(&mut part, room, side);
            return self.framed(part, None, index);
        }
        // `Left` with a prompt: the prompt whole, then the end.
        self.prompt_and_end(prompt, part, room, max, index)
    }

    /// Tokenizes a pair as `[CLS] a [SEP] b [SEP]`. Over the limit the longer of the two
    /// loses tokens first, from `cut`'s side, or the pair is refused when `cut` is `None`.
    pub fn encode_pair_cut(
        &self,
        a: &str,
        b: &str,
        cut: Option<TruncationSide>,
        index: usize,
    ) -> Result<Encoded> {
        self.encode_pair_within(a, b, cut, self.max_len, index)
    }

    /// [`TextTokenizer::encode_pair_cut`] held to `limit` tokens instead of the model's.
    pub fn encode_pair_within(
        &self,
        a: &str,
        b: &str,
        cut: Option<TruncationSide>,
        limit: Option<usize>,
        index: usize,
    ) -> Result<Encoded> {
        let a = self.raw(self.bounded(a, cut, limit, index, 2)?, false, index)?;
        let b = self.raw(self.bounded(b, cut, limit, index, 2)?, false, index)?;
        let added = self.added(true);
        let Some(max) = limit else {
            return self.framed(a, Some(b), index);
        };
        let room = max.saturating_sub(added);
        let n = a.len() + b.len();
        if n <= room {
            return self.framed(a, Some(b), index);
        }
        let Some(side) = cut else {
            return Err(too_long(index, "text pair", n + added, max));
        };
        let params = TruncationParams {
            direction: direction(side),
            max_length: room,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        };
        let (mut a, b) = truncate_encodings(a, Some(b), &params).map_err(|e| Error::Input {
            index,
            message: format!("cutting the pair to the limit failed: {e}"),
        })?;
        a.take_overflowing();
        let b = b.map(|mut b| {
            b.take_overflowing();
            b
        });
        self.framed(a, b, index)
    }
}

#[cfg(test)]
mod tests;
