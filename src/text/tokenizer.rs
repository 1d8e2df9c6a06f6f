//! The model's tokenizer: a thin wrapper over `tokenizers::Tokenizer` that owns the length
//! policy (reject or truncate past the model's limit), knows the special ids, and turns every
//! failure into `Error::Tokenizer` / `Error::Input` with the text's index.

use std::path::Path;

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

/// Which end of a text over the limit is cut: `Right` (the default) keeps its start, `Left`
/// its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TruncationSide {
    Left,
    #[default]
    Right,
}

/// One text's tokens with their places in it, however long it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenPlaces {
    /// Token ids, special tokens included.
    pub ids: Vec<u32>,
    /// Range of each token in the text in characters (Unicode code points, end exclusive).
    pub chars: Vec<(usize, usize)>,
    /// Whether each token is a special token the tokenizer added (`[CLS]`, `[SEP]`).
    pub special: Vec<bool>,
}

/// A tokenizer with the model's length policy.
pub struct TextTokenizer {
    pub(super) inner: tokenizers::Tokenizer,
    special: SpecialIds,
    pub(super) max_len: Option<usize>,
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
            // ModernBERT's own, else the SentencePiece kind's (mmBERT's Gemma tokenizer).
            mask: inner
                .token_to_id("[MASK]")
                .or_else(|| inner.token_to_id("<mask>")),
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
    /// `truncate` is set, in which case it is cut to the limit from the right, keeping the
    /// final `[SEP]` (pairs: the longer of A and B loses tokens first). Callers that choose
    /// per input ([`TextTokenizer::encode_prompted`]) may cut from the left or refuse.
    pub fn set_limit(&mut self, max_len: Option<usize>, truncate: bool) -> Result<()> {
        if let Some(n) = max_len {
            if n < 3 {
                return Err(Error::Option(format!(
                    "a token limit of {n} leaves no room for text between [CLS] and [SEP]"
                )));
            }
        }
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

    /// How an input over the limit is treated when its caller does not say: cut from the
    /// right with truncation on, else refused.
    pub fn default_cut(&self) -> Option<TruncationSide> {
        self.truncate.then_some(TruncationSide::Right)
    }

    /// Tokenizes one text as `[CLS] text [SEP]`; `index` names the text in errors.
    pub fn encode(&self, text: &str, index: usize) -> Result<Encoded> {
        self.encode_prompted(None, text, self.default_cut(), index)
    }

    /// Tokenizes one text without refusing it past the limit: the caller cuts it (ColBERT's
    /// query and document lengths). With truncation on it is already cut to the limit.
    pub fn encode_any_length(&self, text: &str, index: usize) -> Result<Vec<u32>> {
        match self.default_cut() {
            Some(side) => Ok(self.encode_prompted(None, text, Some(side), index)?.ids),
            None => Ok(self.raw(text, true, index)?.get_ids().to_vec()),
        }
    }

    /// Tokenizes one text as `[CLS] text [SEP]` whatever its length (no limit, no
    /// truncation), with each token's range in characters; `index` names it in errors.
    pub fn encode_places(&self, text: &str, index: usize) -> Result<TokenPlaces> {
        // `inner` never truncates: the length policy is applied by the cut (cut.rs).
        let enc = self
            .inner
            .encode_char_offsets(text, true)
            .map_err(|e| Error::Input {
                index,
                message: format!("tokenizing failed: {e}"),
            })?;
        Ok(TokenPlaces {
            ids: enc.get_ids().to_vec(),
            chars: enc.get_offsets().to_vec(),
            special: enc
                .get_special_tokens_mask()
                .iter()
                .map(|&m| m != 0)
                .collect(),
        })
    }

    /// Tokenizes a pair as `[CLS] a [SEP] b [SEP]`; `index` names the pair in errors.
    pub fn encode_pair(&self, a: &str, b: &str, index: usize) -> Result<Encoded> {
        self.encode_pair_cut(a, b, self.default_cut(), index)
    }

    /// Tokenizes many texts; result `i` is text `i`, errors name `first_index + i`.
    pub fn encode_batch(&self, texts: &[&str], first_index: usize) -> Result<Vec<Encoded>> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| self.encode(t, first_index + i))
            .collect()
    }

    /// The tokenizer's own encoding of `text`, never cut (the wrapped tokenizer has no
    /// truncation set: cutting is ours, `text/cut.rs`).
    pub(crate) fn raw(
        &self,
        text: &str,
        specials: bool,
        index: usize,
    ) -> Result<tokenizers::Encoding> {
        self.inner.encode(text, specials).map_err(|e| Error::Input {
            index,
            message: format!("tokenizing failed: {e}"),
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

    /// Id of `[MASK]` (or `<mask>`, the SentencePiece kind's); an error for vocabularies
    /// without one (fill-mask needs it).
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

#[cfg(test)]
pub(crate) mod tests {
    //! The wrapper's logic on a tiny word-level tokenizer built here; tests/text.rs runs
    //! the real ModernBERT tokenizer.

    use super::*;
    use anyhow::Result;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::Whitespace;
    use tokenizers::processors::template::TemplateProcessing;
    use tokenizers::{AddedToken, Tokenizer};

    const SPECIALS: [&str; 5] = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"];
    const WORDS: [&str; 5] = ["hello", "world", "a", "b", "c"];

    /// A word-level tokenizer framed like ModernBERT: ids 0..5 special, 5.. the words.
    fn tiny_inner(with_mask: bool) -> Tokenizer {
        let vocab: serde_json::Map<_, _> = SPECIALS
            .iter()
            .chain(WORDS.iter())
            .enumerate()
            .filter(|(_, t)| with_mask || **t != "[MASK]")
            .map(|(i, t)| (t.to_string(), serde_json::json!(i)))
            .collect();
        let json = serde_json::json!({ "type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]" });
        let model: WordLevel = serde_json::from_str(&json.to_string()).unwrap();
        let template = TemplateProcessing::builder()
            .try_single("[CLS] $A [SEP]")
            .unwrap()
            .try_pair("[CLS] $A [SEP] $B [SEP]")
            .unwrap()
            .special_tokens(vec![("[CLS]", 1), ("[SEP]", 2)])
            .build()
            .unwrap();
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(Whitespace {}));
        tok.with_post_processor(Some(template));
        let specials = SPECIALS.iter().filter(|t| with_mask || **t != "[MASK]");
        tok.add_special_tokens(specials.map(|t| AddedToken::from(*t, true)))
            .unwrap();
        tok
    }

    pub(crate) fn tiny() -> TextTokenizer {
        TextTokenizer::from_tokenizer(tiny_inner(true)).unwrap()
    }

    fn input_err(e: Error) -> (usize, String) {
        match e {
            Error::Input { index, message } => (index, message),
            other => panic!("expected Error::Input, got {other:?}"),
        }
    }

    #[test]
    fn tiny_encodes_with_template() -> Result<()> {
        let tok = tiny();
        let e = tok.encode("hello world", 0)?;
        assert_eq!(e.ids, [1, 5, 6, 2]);
        assert_eq!(e.offsets, [(0, 0), (0, 5), (6, 11), (0, 0)]);
        assert_eq!(
            tok.encode("", 0)?.ids,
            [1, 2],
            "empty text is just [CLS] [SEP]"
        );
        assert_eq!(
            tok.encode("hello zzz", 0)?.ids,
            [1, 5, 0, 2],
            "unknown word is [UNK]"
        );
        assert_eq!(tok.encode_pair("a b", "c", 0)?.ids, [1, 7, 8, 2, 9, 2]);
        let batch = tok.encode_batch(&["a", "b c", ""], 0)?;
        let ids: Vec<_> = batch.into_iter().map(|e| e.ids).collect();
        assert_eq!(ids, [vec![1, 7, 2], vec![1, 8, 9, 2], vec![1, 2]]);
        Ok(())
    }

    #[test]
    fn tiny_special_ids_decode() -> Result<()> {
        let tok = tiny();
        assert_eq!(
            (tok.cls_id()?, tok.sep_id()?, tok.pad_id()?, tok.mask_id()?),
            (1, 2, 3, 4)
        );
        assert_eq!(tok.decode(&[1, 5, 6, 2])?, "hello world");
        assert_eq!(tok.id_to_token(6).as_deref(), Some("world"));
        assert_eq!(tok.id_to_token(999), None);
        assert_eq!(tok.vocab_size(), 10);
        let no_mask = TextTokenizer::from_tokenizer(tiny_inner(false))?;
        let e = no_mask.mask_id().unwrap_err();
        assert!(
            matches!(&e, Error::Tokenizer(m) if m.contains("[MASK]")),
            "{e}"
        );
        Ok(())
    }

    #[test]
    fn tiny_limit_rejects_or_truncates() -> Result<()> {
        let text = "a b c a b c"; // 6 words, 8 tokens framed
        let strict = tiny().with_limit(Some(5), false)?;
        let (index, message) = input_err(strict.encode(text, 7).unwrap_err());
        assert_eq!(index, 7);
        assert!(
            message.contains("has 8 tokens, over the model's limit of 5 (truncation is off;"),
            "{message}"
        );
        let (index, _) = input_err(strict.encode_batch(&["a", text], 10).unwrap_err());
        assert_eq!(index, 11, "batch errors name the text's own index");
        assert!(strict.encode_pair("a b", "c a", 3).is_err());
        assert_eq!(
            strict.encode("a b c", 0)?.ids,
            [1, 7, 8, 9, 2],
            "at the limit is fine"
        );

        let cut = tiny().with_limit(Some(5), true)?;
        let e = cut.encode(text, 0)?;
        assert_eq!(e.ids, [1, 7, 8, 9, 2], "truncated, final [SEP] kept");
        assert_eq!(e.offsets.len(), 5);
        let p = cut.encode_pair("a b c", "a", 0)?;
        assert_eq!(p.ids, [1, 7, 2, 7, 2], "the longer side loses tokens first");
        assert_eq!(cut.encode("", 0)?.ids, [1, 2]);

        assert!(matches!(
            tiny().with_limit(Some(2), true),
            Err(Error::Option(_))
        ));
        Ok(())
    }

    #[test]
    fn tokenizer_file_errors_name_the_path() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let good = dir.path().join("tokenizer.json");
        tiny_inner(true).save(&good, false).unwrap();
        assert_eq!(
            TextTokenizer::from_file(&good)?.encode("c", 0)?.ids,
            [1, 9, 2]
        );

        let broken = dir.path().join("broken.json");
        std::fs::write(&broken, "{ not json")?;
        let missing = dir.path().join("absent.json");
        for path in [&broken, &missing, &dir.path().to_path_buf()] {
            let e = TextTokenizer::from_file(path).unwrap_err();
            let shown = path.display().to_string();
            assert!(
                matches!(&e, Error::Tokenizer(m) if m.contains(&shown)),
                "{e}"
            );
        }
        Ok(())
    }
}
