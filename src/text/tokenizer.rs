//! The model's tokenizer: a thin wrapper over `tokenizers::Tokenizer` that owns the length
//! policy (reject or truncate past the model's limit), knows the special ids, and turns every
//! failure into `Error::Tokenizer` / `Error::Input` with the text's index.

use std::path::Path;

use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{Error, Result};

/// One tokenized text (or text pair), special tokens included.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Encoded {
    /// Token ids: `[CLS] A [SEP]`, or `[CLS] A [SEP] B [SEP]` for pairs.
    pub ids: Vec<u32>,
    /// Byte range of each token in its source text; `(0, 0)` for special tokens. For pairs the
    /// offsets of B's tokens are relative to B.
    pub offsets: Vec<(usize, usize)>,
}

impl Encoded {
    /// Number of tokens, special tokens included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when there are no tokens at all (never the case with special tokens added).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// The special ids the engine needs, looked up once from the vocabulary.
#[derive(Debug, Clone, Copy)]
struct SpecialIds {
    cls: Option<u32>,
    sep: Option<u32>,
    mask: Option<u32>,
    pad: Option<u32>,
}

/// A tokenizer with the model's length policy.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialIds,
    max_len: Option<usize>,
    truncate: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .field("max_len", &self.max_len)
            .field("truncate", &self.truncate)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads a tokenizer.json. No length limit is set; see [`TextTokenizer::set_limit`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            let msg = "is a directory, expected the path of a tokenizer.json";
            return Err(Error::Tokenizer(format!("{}: {msg}", path.display())));
        }
        if !path.is_file() {
            return Err(Error::Tokenizer(format!(
                "{}: file not found",
                path.display()
            )));
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| Error::Tokenizer(format!("{}: cannot load: {e}", path.display())))?;
        Self::from_tokenizer(inner)
    }

    /// Wraps a tokenizer built in code. Any padding or truncation configured in it is
    /// dropped: batches are packed without padding, and the length policy is ours.
    pub fn from_tokenizer(mut inner: tokenizers::Tokenizer) -> Result<Self> {
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(format!("cannot clear truncation: {e}")))?;
        let special = SpecialIds {
            cls: inner.token_to_id("[CLS]"),
            sep: inner.token_to_id("[SEP]"),
            mask: inner.token_to_id("[MASK]"),
            pad: inner.token_to_id("[PAD]"),
        };
        let tok = Self {
            inner,
            special,
            max_len: None,
            truncate: false,
        };
        // The truncation policy and the [CLS]/[SEP] layout rely on the post-processor; a
        // tokenizer.json without one would silently feed the model unframed text.
        let empty = tok.encode("", 0)?;
        if let (Some(cls), Some(sep)) = (special.cls, special.sep) {
            if empty.ids != [cls, sep] {
                log::warn!(
                    "the tokenizer does not frame texts as [CLS] .. [SEP] (empty text gives {:?})",
                    empty.ids
                );
            }
        }
        Ok(tok)
    }

    /// Sets the length policy: `max_len` is the model's limit in tokens, special tokens
    /// included (`None`: no limit). Over the limit, a text is an `Error::Input` unless
    /// `truncate` is set, in which case it is cut to the limit, keeping the final [SEP]
    /// (pairs: the longer of A and B loses tokens first).
    pub fn set_limit(&mut self, max_len: Option<usize>, truncate: bool) -> Result<()> {
        if let Some(n) = max_len {
            if n < 3 {
                return Err(Error::Option(format!(
                    "a token limit of {n} leaves no room for text between [CLS] and [SEP]"
                )));
            }
        }
        let params = match (max_len, truncate) {
            (Some(max_length), true) => Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }),
            _ => None,
        };
        self.inner
            .with_truncation(params)
            .map_err(|e| Error::Tokenizer(format!("cannot set truncation: {e}")))?;
        self.max_len = max_len;
        self.truncate = truncate;
        Ok(())
    }

    /// Builder form of [`TextTokenizer::set_limit`].
    pub fn with_limit(mut self, max_len: Option<usize>, truncate: bool) -> Result<Self> {
        self.set_limit(max_len, truncate)?;
        Ok(self)
    }

    /// The model's token limit, if one is set.
    pub fn max_len(&self) -> Option<usize> {
        self.max_len
    }

    /// Whether texts over the limit are truncated (else rejected).
    pub fn truncates(&self) -> bool {
        self.truncate
    }

    /// Tokenizes one text as `[CLS] text [SEP]`; `index` names the text in errors.
    pub fn encode(&self, text: &str, index: usize) -> Result<Encoded> {
        let enc = self.inner.encode(text, true).map_err(|e| Error::Input {
            index,
            message: format!("tokenizing failed: {e}"),
        })?;
        self.finish(enc, index, "text")
    }

    /// Tokenizes a pair as `[CLS] a [SEP] b [SEP]`; `index` names the pair in errors.
    pub fn encode_pair(&self, a: &str, b: &str, index: usize) -> Result<Encoded> {
        let enc = self.inner.encode((a, b), true).map_err(|e| Error::Input {
            index,
            message: format!("tokenizing failed: {e}"),
        })?;
        self.finish(enc, index, "text pair")
    }

    /// Tokenizes many texts on all cores; result `i` is text `i`, errors name
    /// `first_index + i`.
    pub fn encode_batch(&self, texts: &[&str], first_index: usize) -> Result<Vec<Encoded>> {
        let encs = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Input {
                index: first_index,
                message: format!("tokenizing a batch of {} texts failed: {e}", texts.len()),
            })?;
        encs.into_iter()
            .enumerate()
            .map(|(i, enc)| self.finish(enc, first_index + i, "text"))
            .collect()
    }

    fn finish(&self, enc: tokenizers::Encoding, index: usize, what: &str) -> Result<Encoded> {
        let n = enc.get_ids().len();
        if let Some(max) = self.max_len {
            // With truncation on, the tokenizer already cut to `max`; this only fires when
            // texts must be rejected.
            if n > max {
                return Err(Error::Input {
                    index,
                    message: format!(
                        "{what} has {n} tokens, over the model's limit of {max} (use --truncate)"
                    ),
                });
            }
        }
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            offsets: enc.get_offsets().to_vec(),
        })
    }

    /// Turns ids back into text, leaving out special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(format!("cannot decode {} ids: {e}", ids.len())))
    }

    /// The vocabulary entry of one id (byte-level BPE shows spaces as `Ġ`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a vocabulary entry.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of `[MASK]`; an error for vocabularies without one (fill-mask needs it).
    pub fn mask_id(&self) -> Result<u32> {
        need(self.special.mask, "[MASK]")
    }

    /// Id of `[CLS]`.
    pub fn cls_id(&self) -> Result<u32> {
        need(self.special.cls, "[CLS]")
    }

    /// Id of `[SEP]`.
    pub fn sep_id(&self) -> Result<u32> {
        need(self.special.sep, "[SEP]")
    }

    /// Id of `[PAD]` (packed batches never pad; this is for callers that do).
    pub fn pad_id(&self) -> Result<u32> {
        need(self.special.pad, "[PAD]")
    }

    /// The wrapped tokenizer, for anything this wrapper does not cover.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn need(id: Option<u32>, token: &str) -> Result<u32> {
    id.ok_or_else(|| Error::Tokenizer(format!("the vocabulary has no {token} token")))
}
