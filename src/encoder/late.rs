//! Late chunking: a document is encoded once and each of its chunks is pooled from the final
//! hidden states of the whole document, so that every chunk vector carries the document's
//! context.
//!
//! - Chunks are character spans (Unicode code points, end exclusive), pieces cut after each
//!   occurrence of a separator (the separator ends its piece; pieces that hold no token are
//!   left out), or runs of a token budget (each span runs from its first token's first
//!   character to the next run's, the first from 0 and the last to the end of the text).
//! - A token belongs to the chunk whose span holds its first character in the document (a
//!   token that starts in the prompt and ends in the document: character 0); special
//!   tokens and the prompt's own tokens (those that end inside it) belong to none. A given
//!   span that holds no token is an error.
//! - A chunk's vector is the mean of its tokens' final hidden states, then the model's Dense
//!   modules and Normalize, then `dimensions` and `normalize` as in `embed_with`.
//! - A document longer than the model's limit is encoded in windows: each is `[CLS]`, the
//!   prompt's tokens, at most `limit - 2 - prompt` of the document's tokens and `[SEP]`;
//!   consecutive windows share `overlap` tokens (default [`DEFAULT_OVERLAP`], at most half a
//!   window), and a token in a shared stretch takes its state from the earlier window when it
//!   lies in the stretch's first half (rounded down), from the later one otherwise: each
//!   token's state comes from the window where it has the more context.

use super::{Encoder, Prompt};
use crate::sentence::ModelKind;
use crate::text::tokenizer::TokenPlaces;
use crate::{Error, Result};

/// Tokens two consecutive windows share when none is asked for (at most half a window).
pub const DEFAULT_OVERLAP: usize = 256;

/// How a document is cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunking {
    /// `[start, end)` character spans (code points); they may overlap.
    Spans(Vec<(usize, usize)>),
    /// Pieces cut after each occurrence of this text.
    Separator(String),
    /// Runs of this many tokens.
    Tokens(usize),
}

/// How `embed_late` embeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LateOptions {
    pub prompt: Prompt,
    /// Keep the first `dimensions` values of each chunk vector (Matryoshka).
    pub dimensions: Option<usize>,
    /// L2-normalize each chunk vector at the end, whatever the model does.
    pub normalize: bool,
    /// Tokens consecutive windows share (documents over the model's limit).
    pub overlap: Option<usize>,
}

/// `LateOptions` checked against the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateSpec {
    prompt: String,
    dimensions: Option<usize>,
    normalize: bool,
    overlap: Option<usize>,
}

/// One chunk's vector.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LateChunk {
    /// `[start, end)` in characters of the document.
    pub span: (usize, usize),
    /// Tokens pooled into it.
    pub n_tokens: usize,
    pub embedding: Vec<f32>,
}

/// One document's chunk vectors.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LateDocument {
    /// Tokens of the document with its prompt and special tokens, as one sequence.
    pub n_tokens: usize,
    /// Windows it was encoded in (1 within the model's limit).
    pub windows: usize,
    pub chunks: Vec<LateChunk>,
}

/// A chunk's span and where its tokens' states are: (window, position) each.
type PlannedChunk = ((usize, usize), Vec<(usize, usize)>);

/// A document tokenized and cut: the windows to encode, and where each chunk's token states
/// are (window, position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatePlan {
    n_tokens: usize,
    windows: Vec<Vec<u32>>,
    chunks: Vec<PlannedChunk>,
}

impl LatePlan {
    /// The token sequences this document is encoded as.
    pub fn windows(&self) -> &[Vec<u32>] {
        &self.windows
    }

    /// Chunks it was cut into.
    pub fn n_chunks(&self) -> usize {
        self.chunks.len()
    }

    /// Tokens of all its windows.
    pub fn tokens(&self) -> usize {
        self.windows.iter().map(Vec::len).sum()
    }
}

impl Encoder {
    /// Checks `opts` against the model: late chunking pools token states, so the model must
    /// be a plain encoder or a one-vector embedder whose Pooling gives one hidden-wide vector.
    pub fn late_spec(&self, opts: &LateOptions) -> Result<LateSpec> {
        let sc = &self.sentence;
        if !matches!(sc.kind(), ModelKind::Plain | ModelKind::Embedder) {
            return Err(Error::MissingHead {
                task: "late-chunk",
                message: format!(
                    "this is a {} model; late chunking pools the token states of an embedder",
                    sc.kind().name()
                ),
            });
        }
        let hidden = self.config.hidden_size;
        if let Some(p) = sc
            .pooling
            .as_ref()
            .filter(|p| p.output_dim(hidden) != hidden)
        {
            return Err(Error::MissingHead {
                task: "late-chunk",
                message: format!(
                    "its Pooling concatenates {} modes; a chunk's mean feeds its Dense modules only when Pooling gives one vector",
                    p.modes.len()
                ),
            });
        }
        if opts.dimensions == Some(0) {
            return Err(Error::Option("--dimensions must be at least 1".into()));
        }
        Ok(LateSpec {
            prompt: self.prompt_text(&opts.prompt)?.unwrap_or_default(),
            dimensions: opts.dimensions,
            normalize: opts.normalize,
            overlap: opts.overlap,
        })
    }

    /// Tokenizes one document (with the prompt) and cuts it into windows and chunks;
    /// `index` names it in errors.
    pub fn late_plan(
        &self,
        spec: &LateSpec,
        text: &str,
        chunking: &Chunking,
        index: usize,
    ) -> Result<LatePlan> {
        let tok = self.tokenizer()?;
        let places = tok.encode_places(&format!("{}{text}", spec.prompt), index)?;
        let doc = Document::new(&places, spec.prompt.chars().count(), text.chars().count());
        let chunks = doc.chunks(text, chunking, index)?;
        let limit = tok.max_len().unwrap_or(usize::MAX);
        let (windows, owner) = doc.windows(&places.ids, limit, spec.overlap, index)?;
        let chunks = chunks
            .into_iter()
            .map(|(span, tokens)| (span, tokens.into_iter().map(|t| owner[t]).collect()))
            .collect();
        Ok(LatePlan {
            n_tokens: places.ids.len(),
            windows,
            chunks,
        })
    }

    /// Embeds planned documents, in groups of about one batch of tokens so that the states
    /// read back stay bounded whatever the input.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_late_plans(
        &self,
        plans: &[LatePlan],
        spec: &LateSpec,
    ) -> Result<Vec<LateDocument>> {
        pollster::block_on(self.embed_late_plans_async(plans, spec))
    }

    /// `embed_late_plans` without blocking.
    pub async fn embed_late_plans_async(
        &self,
        plans: &[LatePlan],
        spec: &LateSpec,
    ) -> Result<Vec<LateDocument>> {
        let mut out = Vec::with_capacity(plans.len());
        let mut start = 0;
        while start < plans.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < plans.len()
                && (end == start || tokens + plans[end].tokens() <= self.capacity)
            {
                tokens += plans[end].tokens();
                end += 1;
            }
            let group = self.embed_late_group(&plans[start..end], spec).await;
            out.extend(group.map_err(|e| e.reindexed(start))?);
            start = end;
        }
        Ok(out)
    }

    /// Late-chunks documents, each with its own chunking, in input order.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn embed_late(
        &self,
        docs: &[(&str, Chunking)],
        opts: &LateOptions,
    ) -> Result<Vec<LateDocument>> {
        pollster::block_on(self.embed_late_async(docs, opts))
    }

    /// `embed_late` without blocking.
    pub async fn embed_late_async(
        &self,
        docs: &[(&str, Chunking)],
        opts: &LateOptions,
    ) -> Result<Vec<LateDocument>> {
        let spec = self.late_spec(opts)?;
        let plans = docs
            .iter()
            .enumerate()
            .map(|(i, (text, chunking))| self.late_plan(&spec, text, chunking, i))
            .collect::<Result<Vec<_>>>()?;
        self.embed_late_plans_async(&plans, &spec).await
    }
}

/// A tokenized document: which tokens frame it (`[CLS]` and the prompt's before, `[SEP]`
/// after), and the first character (in the document) of each token that may join a chunk.
struct Document {
    head: usize,
    tail: usize,
    /// Per token: its first character in the document, or `None` (special, prompt).
    starts: Vec<Option<usize>>,
    chars: usize,
}

impl Document {
    fn new(places: &TokenPlaces, prompt_chars: usize, chars: usize) -> Document {
        let n = places.ids.len();
        // A prompt token ends inside the prompt; one that runs on into the document (a
        // byte-level BPE token holding the prompt's last space and the first word) is the
        // document's, from its character 0.
        let in_prompt = |i: usize| prompt_chars > 0 && places.chars[i].1 <= prompt_chars;
        let framing = |i: usize| places.special[i] || in_prompt(i);
        let head = (0..n).take_while(|&i| framing(i)).count();
        let tail = (head..n).rev().take_while(|&i| places.special[i]).count();
        let starts = (0..n)
            .map(|i| {
                let inside = i >= head && i < n - tail && !places.special[i];
                inside.then(|| places.chars[i].0.saturating_sub(prompt_chars))
            })
            .collect();
        Document {
            head,
            tail,
            starts,
            chars,
        }
    }

    /// The chunks' spans and tokens (indices into the whole sequence).
    #[allow(clippy::type_complexity)]
    fn chunks(
        &self,
        text: &str,
        chunking: &Chunking,
        index: usize,
    ) -> Result<Vec<((usize, usize), Vec<usize>)>> {
        let bad = |message: String| Error::Input { index, message };
        let tokens_in = |(s, e): (usize, usize)| -> Vec<usize> {
            let held = |st: &Option<usize>| st.is_some_and(|c| c >= s && c < e);
            (0..self.starts.len())
                .filter(|&i| held(&self.starts[i]))
                .collect()
        };
        match chunking {
            Chunking::Spans(spans) => spans
                .iter()
                .map(|&(s, e)| {
                    if s >= e || e > self.chars {
                        return Err(bad(format!(
                            "chunk [{s}, {e}) is not a span of the text's {} characters (start < end <= length)",
                            self.chars
                        )));
                    }
                    let t = tokens_in((s, e));
                    if t.is_empty() {
                        return Err(bad(format!(
                            "chunk [{s}, {e}) holds the first character of no token"
                        )));
                    }
                    Ok(((s, e), t))
                })
                .collect(),
            Chunking::Separator(sep) if sep.is_empty() => {
                Err(Error::Option("the chunk separator is empty".into()))
            }
            Chunking::Separator(sep) => {
                let mut spans = Vec::new();
                let mut start = 0;
                let mut at = 0;
                for piece in text.split_inclusive(sep.as_str()) {
                    at += piece.chars().count();
                    spans.push((start, at));
                    start = at;
                }
                Ok(spans
                    .into_iter()
                    .map(|span| (span, tokens_in(span)))
                    .filter(|(_, t)| !t.is_empty())
                    .collect())
            }
            Chunking::Tokens(0) => Err(Error::Option(
                "a chunk of 0 tokens: the token budget must be at least 1".into(),
            )),
            Chunking::Tokens(n) => {
                let all: Vec<usize> = (0..self.starts.len())
                    .filter(|&i| self.starts[i].is_some())
                    .collect();
                let runs: Vec<&[usize]> = all.chunks(*n).collect();
                let start_of = |r: &[usize]| self.starts[r[0]].unwrap_or(0);
                Ok(runs
                    .iter()
                    .enumerate()
                    .map(|(k, r)| {
                        let s = if k == 0 { 0 } else { start_of(r) };
                        let e = runs.get(k + 1).map_or(self.chars, |next| start_of(next));
                        ((s, e), r.to_vec())
                    })
                    .collect())
            }
        }
    }

    /// The windows' token ids, and per token of the sequence the (window, position) its
    /// state is read from.
    #[allow(clippy::type_complexity)]
    fn windows(
        &self,
        ids: &[u32],
        limit: usize,
        overlap: Option<usize>,
        index: usize,
    ) -> Result<(Vec<Vec<u32>>, Vec<(usize, usize)>)> {
        let n = ids.len();
        if n <= limit {
            return Ok((vec![ids.to_vec()], (0..n).map(|i| (0, i)).collect()));
        }
        let frame = self.head + self.tail;
        let room = limit.saturating_sub(frame);
        if room == 0 {
            return Err(Error::Input {
                index,
                message: format!(
                    "the prompt and special tokens ({frame}) leave no room in the model's limit of {limit} tokens"
                ),
            });
        }
        let overlap = match overlap {
            Some(o) if o >= room => {
                return Err(Error::Option(format!(
                    "an overlap of {o} tokens needs windows of more than {o} document tokens; \
                     the model's limit leaves {room}"
                )));
            }
            Some(o) => o,
            None => DEFAULT_OVERLAP.min(room / 2),
        };
        let body = &ids[self.head..n - self.tail];
        let stride = room - overlap;
        let mut starts = vec![0];
        while starts[starts.len() - 1] + room < body.len() {
            starts.push(starts[starts.len() - 1] + stride);
        }
        let windows = starts
            .iter()
            .map(|&s| {
                let mut w = ids[..self.head].to_vec();
                w.extend_from_slice(&body[s..(s + room).min(body.len())]);
                w.extend_from_slice(&ids[n - self.tail..]);
                w
            })
            .collect();
        // Framing tokens are read from the first window; they join no chunk.
        let mut owner: Vec<(usize, usize)> = (0..self.head).map(|i| (0, i)).collect();
        let mut k = 0;
        for i in 0..body.len() {
            while k + 1 < starts.len() && i >= starts[k + 1] + overlap / 2 {
                k += 1;
            }
            owner.push((k, self.head + i - starts[k]));
        }
        owner.extend((0..self.tail).map(|j| (0, self.head + body.len().min(room) + j)));
        Ok((windows, owner))
    }
}

mod pool;
#[cfg(test)]
mod tests;
