//! One way in: every front end (the library's own tasks, the CLI, the server, the Python
//! package) turns its inputs into token ids here, with the prompt and the length policy
//! applied by one rule (`text/cut.rs`): a prompt goes before its text and stays whole when
//! the text is cut; `Right` keeps the start of a text, `Left` its end.

use super::Encoder;
use crate::text::TruncationSide;
use crate::{Error, Result};

/// One input of a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A text.
    Text(String),
    /// A (text, text) pair, `[CLS] a [SEP] b [SEP]`: what cross-encoders and pair
    /// classifiers score.
    Pair(String, String),
    /// Token ids, used as the whole sequence as given (special tokens are not added). With a
    /// prompt they are decoded to text first and the prompt goes before it, as
    /// text-embeddings-inference does.
    Ids(Vec<u32>),
}

impl Input {
    /// Characters of its text (token ids count one each), as TEI counts them.
    pub fn chars(&self) -> usize {
        match self {
            Input::Text(t) => t.chars().count(),
            Input::Pair(a, b) => a.chars().count() + b.chars().count(),
            Input::Ids(ids) => ids.len(),
        }
    }
}

/// What happens to an input over the model's limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Truncation {
    /// What the model was loaded with (`LoadOptions::truncate`: cut from the right, else
    /// refuse).
    #[default]
    Model,
    /// An error naming the input.
    Refuse,
    /// Cut from this side.
    Cut(TruncationSide),
}

impl Encoder {
    /// The longest input in tokens, special tokens included: the model's limit
    /// (sentence-transformers' `max_seq_length`, else `max_position_embeddings`), at most
    /// the batch capacity.
    pub fn max_input_tokens(&self) -> usize {
        let model = self
            .tokenizer
            .as_ref()
            .and_then(|t| t.max_len())
            .unwrap_or(self.config.max_position_embeddings);
        model.min(self.capacity)
    }

    /// The token ids of one input under `truncation`, with `prompt` (a text) before a text;
    /// `index` names the input in errors. Within the limit a text gets exactly the
    /// tokenizer's ids of `prompt + text`.
    pub fn input_tokens(
        &self,
        input: &Input,
        prompt: Option<&str>,
        truncation: Truncation,
        index: usize,
    ) -> Result<Vec<u32>> {
        let tok = self.tokenizer()?;
        let cut = match truncation {
            Truncation::Model => tok.default_cut(),
            Truncation::Refuse => None,
            Truncation::Cut(side) => Some(side),
        };
        // Cut to the smaller of the model's limit and the batch capacity; refused past the
        // model's limit (named), then past the capacity (named).
        let model = tok.max_len();
        let limit = match cut {
            Some(_) => Some(self.max_input_tokens()),
            None => model,
        };
        let ids = match input {
            Input::Text(t) => {
                tok.encode_prompted_within(prompt, t, cut, limit, index)?
                    .ids
            }
            Input::Pair(..) if prompt.is_some() => {
                return Err(Error::Input {
                    index,
                    message: "a prompt cannot be used with a text pair".into(),
                });
            }
            Input::Pair(a, b) => tok.encode_pair_within(a, b, cut, limit, index)?.ids,
            Input::Ids(ids) => {
                self.check_ids(ids, index)?;
                if let Some(p) = prompt {
                    let text = tok.decode(ids)?;
                    tok.encode_prompted_within(Some(p), &text, cut, limit, index)?
                        .ids
                } else {
                    let mut ids = ids.clone();
                    let max = limit.unwrap_or(usize::MAX);
                    if ids.len() > max {
                        match cut {
                            None => {
                                return Err(Error::Input {
                                    index,
                                    message: format!(
                                        "{} token ids, over the model's limit of {max} ({})",
                                        ids.len(),
                                        crate::text::OFF
                                    ),
                                });
                            }
                            Some(TruncationSide::Right) => ids.truncate(max),
                            Some(TruncationSide::Left) => {
                                ids.drain(..ids.len() - max);
                            }
                        }
                    }
                    ids
                }
            }
        };
        if ids.len() > self.capacity {
            return Err(Error::Input {
                index,
                message: format!(
                    "sequence of {} tokens is longer than the batch capacity of {} tokens",
                    ids.len(),
                    self.capacity
                ),
            });
        }
        Ok(ids)
    }

    /// Token ids given by a caller: at least one, each inside the vocabulary.
    fn check_ids(&self, ids: &[u32], index: usize) -> Result<()> {
        if ids.is_empty() {
            return Err(Error::Input {
                index,
                message: "no token ids".into(),
            });
        }
        let vocab = self.config.vocab_size;
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Input {
                index,
                message: format!("token id {bad} is outside the model's vocabulary of {vocab}"),
            });
        }
        Ok(())
    }

    /// The token ids of many inputs (see [`Encoder::input_tokens`]); errors name the input's
    /// index plus `first_index`.
    pub fn inputs_tokens(
        &self,
        inputs: &[Input],
        prompt: Option<&str>,
        truncation: Truncation,
        first_index: usize,
    ) -> Result<Vec<Vec<u32>>> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, input)| self.input_tokens(input, prompt, truncation, first_index + i))
            .collect()
    }
}
