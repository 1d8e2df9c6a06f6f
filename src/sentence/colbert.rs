//! Late-interaction (ColBERT) models: one shared description, [`ColbertConfig`], with two
//! front ends: PyLate's layout (`config_sentence_transformers.json` keys, [`ColbertConfig::from_json`])
//! and sentence-transformers' own `MultiVectorEncoder` layout (the Transformer's
//! `query_length` / `document_length` / `query_expansion`, a `MultiVectorMask` module, prompts
//! as plain text, [`ColbertConfig::native`]).
//!
//! A query is `[CLS] [Q] text [SEP]` cut to its length and, with query expansion, filled with
//! the expansion token (`[MASK]`) up to the expansion length; a document is
//! `[CLS] [D] text [SEP]` cut to its length. PyLate's prefix goes in after `[CLS]` once the
//! text was tokenized and truncated to one token less; the native layout's prompt is text
//! before the text. Every token goes through the Dense projection and is L2-normalized (PyLate
//! always, the native layout where a Normalize module says so); the skiplist drops tokens of
//! documents (and of queries where its tasks say so), and `keep_only_token_ids` keeps only
//! those ids of documents.

use std::path::Path;

use serde_json::Value;

use super::layout_err;
use crate::text::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// Which layout a multi-vector description was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiVectorLayout {
    PyLate,
    SentenceTransformers,
}

/// Query expansion: queries shorter than `length` are filled with `token` up to it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Expansion {
    pub length: usize,
    /// Whether the encoder attends to the expansion tokens (they are always scored).
    pub attend: bool,
    /// The expansion token (`None`: the tokenizer's mask token).
    pub token: Option<String>,
    /// `fixed`: queries are also cut to `length`; `min`: `length` is only the floor.
    pub fixed: bool,
}

/// A late-interaction model's settings, defaults filled in as its library does.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColbertConfig {
    pub layout: MultiVectorLayout,
    /// PyLate's prefix tokens (empty in the native layout, whose prompts are text).
    pub query_prefix: String,
    pub document_prefix: String,
    /// Queries are cut to this many tokens (`None`: only the model's own limit).
    pub query_length: Option<usize>,
    pub document_length: Option<usize>,
    pub expansion: Option<Expansion>,
    pub skiplist_words: Vec<String>,
    /// Whether the skiplist applies to queries and to documents (`skiplist_tasks`).
    pub skip_queries: bool,
    pub skip_documents: bool,
    /// Documents keep only these token ids, when set.
    pub keep_only_token_ids: Option<Vec<u32>>,
    /// Whether every vector is L2-normalized.
    pub normalize: bool,
}

impl ColbertConfig {
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let string = |key: &str, default: &str| -> Result<String> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default.to_string()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(o) => Err(layout_err(path, format!("{key} must be a string, got {o}"))),
            }
        };
        let length = |key: &str, default: usize| -> Result<usize> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(o) => o
                    .as_u64()
                    .filter(|&n| n >= 4)
                    .map(|n| n as usize)
                    .ok_or_else(|| {
                        layout_err(path, format!("{key} must be an integer >= 4, got {o}"))
                    }),
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool> {
            match v.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(Value::Bool(b)) => Ok(*b),
                Some(o) => Err(layout_err(
                    path,
                    format!("{key} must be true or false, got {o}"),
                )),
            }
        };
        let skiplist_words = match v.get("skiplist_words") {
            None | Some(Value::Null) => PUNCTUATION.chars().map(String::from).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|w| {
                    w.as_str().map(str::to_string).ok_or_else(|| {
                        layout_err(path, format!("skiplist_words holds a non-string {w}"))
                    })
                })
                .collect::<Result<_>>()?,
            Some(o) => {
                return Err(layout_err(
                    path,
                    format!("skiplist_words must be a list, got {o}"),
                ));
            }
        };
        let query_length = length("query_length", 32)?;
        let expansion = if flag("do_query_expansion", true)? {
            Some(Expansion {
                length: query_length,
                attend: flag("attend_to_expansion_tokens", false)?,
                token: None,
                fixed: true,
            })
        } else {
            None
        };
        Ok(ColbertConfig {
            layout: MultiVectorLayout::PyLate,
            query_prefix: string("query_prefix", "[Q] ")?,
            document_prefix: string("document_prefix", "[D] ")?,
            query_length: Some(query_length),
            document_length: Some(length("document_length", 180)?),
            expansion,
            skiplist_words,
            skip_queries: false,
            skip_documents: true,
            keep_only_token_ids: None,
            normalize: true,
        })
    }

    /// The native layout: the Transformer's `sentence_bert_config.json` (`query_length`,
    /// `document_length`, `query_expansion` with `strategy`, `attend`, `token`, `length`; each
    /// absent by default), the `MultiVectorMask` config (`skiplist_words` default none,
    /// `skiplist_tasks` default `["document"]`, `keep_only_token_ids` default none) and
    /// whether a Normalize module follows.
    pub fn native(
        transformer: Option<(&Path, &Value)>,
        mask: Option<(&Path, &Value)>,
        normalize: bool,
    ) -> Result<Self> {
        let mut c = ColbertConfig {
            layout: MultiVectorLayout::SentenceTransformers,
            query_prefix: String::new(),
            document_prefix: String::new(),
            query_length: None,
            document_length: None,
            expansion: None,
            skiplist_words: Vec::new(),
            skip_queries: false,
            skip_documents: true,
            keep_only_token_ids: None,
            normalize,
        };
        if let Some((path, v)) = transformer {
            let length = |key: &str| -> Result<Option<usize>> {
                match v.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(o) => o
                        .as_u64()
                        .filter(|&n| n >= 2)
                        .map(|n| Some(n as usize))
                        .ok_or_else(|| {
                            layout_err(path, format!("{key} must be an integer >= 2, got {o}"))
                        }),
                }
            };
            c.query_length = length("query_length")?;
            c.document_length = length("document_length")?;
            c.expansion = match v.get("query_expansion") {
                None | Some(Value::Null) => None,
                Some(e) => Some(Self::expansion(e, path)?),
            };
            if let (Some(q), Some(e)) = (c.query_length, &c.expansion) {
                if q < e.length {
                    return Err(layout_err(
                        path,
                        format!(
                            "query_length {q} is smaller than query_expansion length {}",
                            e.length
                        ),
                    ));
                }
            }
        }
        if let Some((path, v)) = mask {
            let bad = |what: &str| layout_err(path, format!("MultiVectorMask: {what}"));
            let strings = |x: &Value| -> Option<Vec<String>> {
                x.as_array()?
                    .iter()
                    .map(|w| w.as_str().map(str::to_string))
                    .collect()
            };
            match v.get("skiplist_words") {
                None | Some(Value::Null) => {}
                Some(x) => {
                    c.skiplist_words =
                        strings(x).ok_or_else(|| bad("skiplist_words is not a list of strings"))?
                }
            }
            let tasks = match v.get("skiplist_tasks") {
                None | Some(Value::Null) => vec!["document".to_string()],
                Some(Value::String(t)) => vec![t.clone()],
                Some(x) => {
                    strings(x).ok_or_else(|| bad("skiplist_tasks is not a list of strings"))?
                }
            };
            c.skip_queries = tasks.iter().any(|t| t == "query");
            c.skip_documents = tasks.iter().any(|t| t == "document");
            c.keep_only_token_ids = match v.get("keep_only_token_ids") {
                None | Some(Value::Null) => None,
                Some(x) => Some(
                    x.as_array()
                        .and_then(|a| a.iter().map(|i| i.as_u64().map(|i| i as u32)).collect())
                        .ok_or_else(|| bad("keep_only_token_ids is not a list of token ids"))?,
                ),
            };
        }
        Ok(c)
    }

    fn expansion(e: &Value, path: &Path) -> Result<Expansion> {
        let bad = |what: String| layout_err(path, format!("query_expansion: {what}"));
        let obj = e
            .as_object()
            .ok_or_else(|| bad(format!("not an object: {e}")))?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["strategy", "attend", "token", "length"].contains(&k.as_str()))
        {
            return Err(bad(format!("unknown key {k:?}")));
        }
        let fixed = match obj.get("strategy").and_then(Value::as_str) {
            Some("fixed") => true,
            Some("min") => false,
            other => {
                return Err(bad(format!(
                    "strategy must be \"fixed\" or \"min\", got {other:?}"
                )));
            }
        };
        let attend = match obj.get("attend") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(o) => return Err(bad(format!("attend must be true or false, got {o}"))),
        };
        let token = match obj.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(o) => return Err(bad(format!("token must be a string, got {o}"))),
        };
        let length = obj
            .get("length")
            .and_then(Value::as_u64)
            .filter(|&n| n >= 1)
            .ok_or_else(|| bad("length must be a positive integer".into()))?
            as usize;
        Ok(Expansion {
            length,
            attend,
            token,
            fixed,
        })
    }

    /// The id of the expansion token.
    pub fn expansion_id(&self, tok: &TextTokenizer) -> Result<u32> {
        match self.expansion.as_ref().and_then(|e| e.token.as_deref()) {
            None => tok.mask_id(),
            Some(t) => tok.token_to_id(t).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "the query expansion token {t:?} is not in the tokenizer's vocabulary"
                ))
            }),
        }
    }

    /// Whether a query's expansion tokens are left out of attention.
    pub fn masks_expansion(&self) -> bool {
        self.expansion.as_ref().is_some_and(|e| !e.attend)
    }

    /// The most tokens a query keeps.
    fn query_cut(&self) -> Option<usize> {
        match &self.expansion {
            Some(e) if e.fixed => Some(e.length),
            Some(e) => self.query_length.map(|q| q.max(e.length)),
            None => self.query_length,
        }
    }

    /// The token sequence of a query (`query: true`) or a document (the native layout's
    /// prompt already before `text`). `index` names the text in errors.
    pub fn tokens(
        &self,
        tok: &TextTokenizer,
        text: &str,
        query: bool,
        index: usize,
    ) -> Result<Vec<u32>> {
        let (prefix, length) = if query {
            (&self.query_prefix, self.query_cut())
        } else {
            (&self.document_prefix, self.document_length)
        };
        let prefix_id = if prefix.is_empty() {
            None
        } else {
            Some(tok.token_to_id(prefix).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "the ColBERT prefix token {prefix:?} is not in the tokenizer's vocabulary"
                ))
            })?)
        };
        let n_prefix = usize::from(prefix_id.is_some());
        let mut ids = match length {
            Some(_) => tok.encode_any_length(text, index)?,
            // No length of its own: the model's limit, as any text.
            None => tok.encode(text, index)?.ids,
        };
        if let Some(length) = length {
            let room = length.saturating_sub(n_prefix).max(2);
            if ids.len() > room {
                // Keep [CLS] and the final [SEP], as the tokenizer's own truncation does.
                let last = ids.pop().unwrap_or_default();
                ids.truncate(room - 1);
                ids.push(last);
            }
        }
        if let (true, Some(e)) = (query, &self.expansion) {
            let fill = e.length.saturating_sub(n_prefix);
            if ids.len() < fill {
                ids.resize(fill, self.expansion_id(tok)?);
            }
        }
        if let Some(p) = prefix_id {
            ids.insert(1.min(ids.len()), p);
        }
        Ok(ids)
    }

    /// How many leading tokens of a `tokens` sequence attention may look at: all of them,
    /// except for a query whose expansion is not attended to, where the trailing expansion
    /// tokens are left out (they still attend to the others, their attention mask being 0
    /// there). The text's own tokens always end in `[SEP]`, so the trailing expansion tokens
    /// are exactly the expansion.
    pub fn attended(&self, ids: &[u32], query: bool, expansion_id: u32) -> usize {
        if !(query && self.masks_expansion()) {
            return ids.len();
        }
        let expansion = ids
            .iter()
            .rev()
            .take_while(|&&id| id == expansion_id)
            .count();
        ids.len() - expansion
    }

    /// The skiplist's ids: each word's id; PyLate gives a word the vocabulary lacks `[UNK]`'s
    /// id (as `convert_tokens_to_ids` does), sentence-transformers' `MultiVectorMask` drops
    /// such a word.
    pub fn skiplist_ids(&self, tok: &TextTokenizer) -> Vec<u32> {
        let unk = match self.layout {
            MultiVectorLayout::PyLate => tok.token_to_id("[UNK]"),
            MultiVectorLayout::SentenceTransformers => None,
        };
        self.skiplist_words
            .iter()
            .filter_map(|w| tok.token_to_id(w).or(unk))
            .collect()
    }

    /// Whether a token of a query (`query: true`) or document gives a vector, `skip` being
    /// `skiplist_ids`.
    pub fn scored(&self, id: u32, query: bool, skip: &[u32]) -> bool {
        let skipping = if query {
            self.skip_queries
        } else {
            self.skip_documents
        };
        if skipping && skip.contains(&id) {
            return false;
        }
        match (&self.keep_only_token_ids, query) {
            (Some(keep), false) => keep.contains(&id),
            _ => true,
        }
    }
}

/// Python's `string.punctuation`, PyLate's default skiplist.
const PUNCTUATION: &str = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// MaxSim: the sum over query vectors of the best dot product with any document vector.
pub fn maxsim(query: &[Vec<f32>], doc: &[Vec<f32>]) -> f32 {
    query
        .iter()
        .map(|q| {
            doc.iter()
                .map(|d| {
                    q.iter()
                        .zip(d)
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                })
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .filter(|s| s.is_finite())
        .sum::<f64>() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_maxsim() {
        let c = ColbertConfig::from_json(&serde_json::json!({}), Path::new("x")).unwrap();
        assert_eq!((c.query_length, c.document_length), (Some(32), Some(180)));
        assert_eq!(c.query_prefix, "[Q] ");
        assert!(c.skiplist_words.contains(&",".to_string()));
        let bad = serde_json::json!({"query_length": "long"});
        assert!(ColbertConfig::from_json(&bad, Path::new("x")).is_err());
        // [CLS] [Q] a [MASK] b [SEP] then the expansion: only the expansion is unattended.
        let ids = [1, 9, 5, 3, 6, 2, 3, 3, 3];
        assert_eq!(c.attended(&ids, true, 3), 6);
        assert_eq!(
            c.attended(&ids, false, 3),
            9,
            "documents attend to every token"
        );
        let attend = serde_json::json!({"attend_to_expansion_tokens": true});
        let c2 = ColbertConfig::from_json(&attend, Path::new("x")).unwrap();
        assert_eq!(c2.attended(&ids, true, 3), 9);
        let q = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let d = vec![vec![0.5, 0.5], vec![0.9, -0.1]];
        assert!((maxsim(&q, &d) - (0.9 + 0.5)).abs() < 1e-6);
    }
}
