//! PyLate's ColBERT rules. A query is `[CLS] [Q] text [SEP]` cut to `query_length` tokens and,
//! with query expansion, filled with `[MASK]` up to `query_length`; a document is
//! `[CLS] [D] text [SEP]` cut to `document_length`. The prefix goes in after `[CLS]` once the
//! text was tokenized and truncated to one token less. Every token goes through the Dense
//! projection and is L2-normalized; documents then drop the tokens of the skiplist
//! (punctuation by default), queries keep all of theirs (the expansion tokens too).

use std::path::Path;

use serde_json::Value;

use super::layout_err;
use crate::text::tokenizer::TextTokenizer;
use crate::{Error, Result};

/// PyLate's settings from `config_sentence_transformers.json`, defaults filled in as PyLate
/// does.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ColbertConfig {
    pub query_prefix: String,
    pub document_prefix: String,
    pub query_length: usize,
    pub document_length: usize,
    pub do_query_expansion: bool,
    pub attend_to_expansion_tokens: bool,
    pub skiplist_words: Vec<String>,
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
        let do_query_expansion = flag("do_query_expansion", true)?;
        Ok(ColbertConfig {
            query_prefix: string("query_prefix", "[Q] ")?,
            document_prefix: string("document_prefix", "[D] ")?,
            query_length: length("query_length", 32)?,
            document_length: length("document_length", 180)?,
            do_query_expansion,
            // PyLate never attends to expansion tokens it does not add.
            attend_to_expansion_tokens: do_query_expansion
                && flag("attend_to_expansion_tokens", false)?,
            skiplist_words,
        })
    }

    /// The token sequence of a query (`query: true`) or a document, as PyLate builds it.
    /// `index` names the text in errors.
    pub fn tokens(
        &self,
        tok: &TextTokenizer,
        text: &str,
        query: bool,
        index: usize,
    ) -> Result<Vec<u32>> {
        let (prefix, length) = if query {
            (&self.query_prefix, self.query_length)
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
        let room = length - usize::from(prefix_id.is_some());
        let mut ids = tok.encode_any_length(text, index)?;
        if ids.len() > room {
            // Keep [CLS] and the final [SEP], as the tokenizer's own truncation does.
            let last = ids.pop().unwrap_or_default();
            ids.truncate(room - 1);
            ids.push(last);
        }
        if query && self.do_query_expansion {
            ids.resize(room, tok.mask_id()?);
        }
        if let Some(p) = prefix_id {
            ids.insert(1.min(ids.len()), p);
        }
        Ok(ids)
    }

    /// How many leading tokens of a `tokens` sequence attention may look at: all of them,
    /// except for a query whose expansion is not attended to, where the trailing `[MASK]`
    /// expansion tokens are left out (they still attend to the others, as in PyLate, whose
    /// attention mask is 0 there). The text's own tokens always end in `[SEP]`, so the
    /// trailing `[MASK]`s are exactly the expansion.
    pub fn attended(&self, ids: &[u32], query: bool, mask_id: u32) -> usize {
        if !(query && self.do_query_expansion) || self.attend_to_expansion_tokens {
            return ids.len();
        }
        let expansion = ids.iter().rev().take_while(|&&id| id == mask_id).count();
        ids.len() - expansion
    }

    /// The ids that documents leave out: each skiplist word's id, or `[UNK]`'s for a word
    /// the vocabulary lacks (as `convert_tokens_to_ids` gives).
    pub fn skiplist_ids(&self, tok: &TextTokenizer) -> Vec<u32> {
        let unk = tok.token_to_id("[UNK]");
        self.skiplist_words
            .iter()
            .filter_map(|w| tok.token_to_id(w).or(unk))
            .collect()
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
        assert_eq!((c.query_length, c.document_length), (32, 180));
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
