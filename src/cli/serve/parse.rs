//! Request bodies, counted while they are parsed. The input lists of every route are read by
//! serde visitors that count their items and stop at the first one past
//! `--max-client-batch-size`, so no body is ever held as an untyped tree or parsed past its
//! limit; unknown fields are skipped without being kept. `parse` maps serde's errors to
//! TEI's statuses: a syntax error 400, a wrong type or value 422 (axum's `Json`, which TEI
//! uses, answers the same), too many inputs 422 naming the limit (TEI's code; its OpenAPI
//! text says 413).
//!
//! The shapes follow TEI's router:
//! - [`EmbedInputs`]: `"text"`, `[token ids]`, or a batch of texts and id lists;
//! - [`EmbedDocs`] (docs.rs, `/embed` only): as `EmbedInputs`, where a text may also be an
//!   object `{"text", "chunks"}` for late chunking;
//! - [`PredictInputs`] (predict.rs): `"text"`, `["a", "b"]` (one pair), or a batch
//!   `[["a"], ["a", "b"]]`;
//! - [`TextInputs`]: `"text"` or `["text", ...]`; [`Texts`]: `["text", ...]`;
//! - [`IdsInputs`]: `[ids]` or `[[ids], ...]`.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use wgbert::encoder::Input;

use super::error::ApiError;

mod docs;
mod predict;
pub use docs::EmbedDocs;
pub use predict::PredictInputs;

thread_local! {
    /// The largest input count the parse running on this thread accepts.
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Set when that parse stopped at the limit.
    static OVER: Cell<bool> = const { Cell::new(false) };
}

/// Parses a JSON body into `T`, whose input lists may hold at most `max_inputs` items.
pub fn parse<T: DeserializeOwned>(body: &[u8], max_inputs: usize) -> Result<T, ApiError> {
    LIMIT.set(max_inputs);
    OVER.set(false);
    let parsed = serde_json::from_slice::<T>(body);
    LIMIT.set(usize::MAX);
    let over = OVER.replace(false);
    parsed.map_err(|e| {
        if over {
            ApiError::validation(format!(
                "batch size > maximum allowed batch size {max_inputs} (--max-client-batch-size)"
            ))
        } else if e.classify() == serde_json::error::Category::Data {
            ApiError::validation(format!("bad request body: {e}"))
        } else {
            ApiError::bad_request(format!("malformed JSON: {e}"))
        }
    })
}

/// Counts one more item of a list; past the limit, an error that stops the parse.
fn count<E: de::Error>(n: &mut usize) -> Result<(), E> {
    *n += 1;
    let limit = LIMIT.get();
    if *n > limit {
        OVER.set(true);
        return Err(E::custom(format!("more than {limit} inputs")));
    }
    Ok(())
}

/// A list of inputs, and whether the request sent one bare input (its answer is then one
/// entry instead of a list, where TEI answers so).
#[derive(Debug)]
pub struct Batch<T> {
    pub items: Vec<T>,
    pub single: bool,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            items: Vec::new(),
            single: false,
        }
    }
}

impl<T> Batch<T> {
    fn one(item: T) -> Self {
        Batch {
            items: vec![item],
            single: true,
        }
    }
}

/// One element of an embedding batch: a text, a list of token ids, or (only as the first
/// element of a bare id list) a token id.
enum EmbedItem {
    Text(String),
    Ids(Vec<u32>),
    Id(u32),
    /// `{"text", "chunks"}`: a document for `/embed`'s late chunking (docs.rs).
    Doc(docs::DocItem),
}

fn id<E: de::Error>(v: u64) -> Result<u32, E> {
    u32::try_from(v).map_err(|_| E::custom(format!("token id {v} is out of range")))
}

impl<'de> Deserialize<'de> for EmbedItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbedItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, a token id or a list of token ids")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EmbedItem, E> {
                Ok(EmbedItem::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<EmbedItem, E> {
                Ok(EmbedItem::Text(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<EmbedItem, E> {
                id(v).map(EmbedItem::Id)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbedItem, A::Error> {
                let mut ids = Vec::new();
                while let Some(v) = seq.next_element::<u64>()? {
                    ids.push(id(v)?);
                }
                Ok(EmbedItem::Ids(ids))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EmbedItem, A::Error> {
                let d = de::value::MapAccessDeserializer::new(map);
                docs::DocItem::deserialize(d).map(EmbedItem::Doc)
            }
        }
        d.deserialize_any(V)
    }
}

/// `/embed`'s `inputs` (and OpenAI's `input`): a text, a list of token ids, or a batch of
/// texts and id lists.
#[derive(Debug, Default)]
pub struct EmbedInputs(pub Batch<Input>);

struct EmbedVisitor;

impl<'de> Visitor<'de> for EmbedVisitor {
    type Value = EmbedInputs;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a text, a list of token ids, or a list of texts and token-id lists")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<EmbedInputs, E> {
        Ok(EmbedInputs(Batch::one(Input::Text(v.to_string()))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EmbedInputs, A::Error> {
        let (inputs, chunks) = embed_seq(seq)?;
        if let Some(i) = chunks.iter().position(Option::is_some) {
            // Objects are late chunking's documents, which only /embed reads.
            return Err(de::Error::custom(format!(
                "input {i} is an object ({{\"text\", \"chunks\"}}): only /embed takes such inputs, with \"late_chunking\""
            )));
        }
        Ok(inputs)
    }
}

/// A list of `/embed` inputs, counted; objects (`{"text", "chunks"}`) are read as texts,
/// with their spans beside them (`Some(spans given or not)` for an object, `None` for the
/// other inputs).
#[allow(clippy::type_complexity)]
fn embed_seq<'de, A: SeqAccess<'de>>(
    mut seq: A,
) -> Result<(EmbedInputs, Vec<Option<Option<docs::Spans>>>), A::Error> {
    let mut n = 0;
    let mut items = Vec::new();
    let mut chunks = Vec::new();
    let mut take = |item: EmbedItem, items: &mut Vec<Input>| -> Result<(), A::Error> {
        let (input, spans) = match item {
            EmbedItem::Text(t) => (Input::Text(t), None),
            EmbedItem::Ids(ids) => (Input::Ids(ids), None),
            EmbedItem::Doc(d) => (Input::Text(d.text), Some(d.chunks)),
            EmbedItem::Id(_) => {
                return Err(de::Error::custom(
                    "a batch holds texts and lists of token ids, not bare token ids",
                ));
            }
        };
        items.push(input);
        chunks.push(spans);
        Ok(())
    };
    match seq.next_element::<EmbedItem>()? {
        None => return Ok((EmbedInputs::default(), Vec::new())),
        // A bare list of token ids is one input.
        Some(EmbedItem::Id(first)) => {
            let mut ids = vec![first];
            while let Some(v) = seq.next_element::<u64>()? {
                ids.push(id(v)?);
            }
            return Ok((EmbedInputs(Batch::one(Input::Ids(ids))), vec![None]));
        }
        Some(item) => take(item, &mut items)?,
    }
    count(&mut n)?;
    while let Some(item) = seq.next_element::<EmbedItem>()? {
        count(&mut n)?;
        take(item, &mut items)?;
    }
    let inputs = EmbedInputs(Batch {
        items,
        single: false,
    });
    Ok((inputs, chunks))
}

impl<'de> Deserialize<'de> for EmbedInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EmbedVisitor)
    }
}

/// `"text"` or `["text", ...]`.
#[derive(Debug, Default)]
pub struct TextInputs(pub Batch<String>);

impl<'de> Deserialize<'de> for TextInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextInputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text or a list of texts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextInputs, E> {
                Ok(TextInputs(Batch::one(v.to_string())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TextInputs, A::Error> {
                let Texts(items) = texts(seq)?;
                Ok(TextInputs(Batch {
                    items,
                    single: false,
                }))
            }
        }
        d.deserialize_any(V)
    }
}

/// `["text", ...]`, counted.
#[derive(Debug, Default)]
pub struct Texts(pub Vec<String>);

fn texts<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Texts, A::Error> {
    let mut n = 0;
    let mut items = Vec::new();
    while let Some(t) = seq.next_element::<String>()? {
        count(&mut n)?;
        items.push(t);
    }
    Ok(Texts(items))
}

impl<'de> Deserialize<'de> for Texts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Texts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of texts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Texts, A::Error> {
                texts(seq)
            }
        }
        d.deserialize_seq(V)
    }
}

/// `/decode`'s `ids`: one list of token ids or a batch of them.
#[derive(Debug, Default)]
pub struct IdsInputs(pub Batch<Vec<u32>>);

impl<'de> Deserialize<'de> for IdsInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdsInputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of token ids or a list of such lists")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<IdsInputs, A::Error> {
                let mut items = Vec::new();
                match seq.next_element::<EmbedItem>()? {
                    None => return Ok(IdsInputs(Batch::one(Vec::new()))),
                    Some(EmbedItem::Id(first)) => {
                        let mut ids = vec![first];
                        while let Some(v) = seq.next_element::<u64>()? {
                            ids.push(id(v)?);
                        }
                        return Ok(IdsInputs(Batch::one(ids)));
                    }
                    Some(EmbedItem::Ids(ids)) => items.push(ids),
                    Some(EmbedItem::Text(_) | EmbedItem::Doc(_)) => {
                        return Err(de::Error::custom("token ids are numbers, not texts"));
                    }
                }
                let mut n = 0;
                count(&mut n)?;
                while let Some(item) = seq.next_element::<EmbedItem>()? {
                    count(&mut n)?;
                    match item {
                        EmbedItem::Ids(ids) => items.push(ids),
                        _ => return Err(de::Error::custom("a batch holds lists of token ids")),
                    }
                }
                Ok(IdsInputs(Batch {
                    items,
                    single: false,
                }))
            }
        }
        d.deserialize_seq(V)
    }
}

/// huggingface_hub's `sentence_similarity` inputs.
#[derive(Deserialize, Debug)]
pub struct SimilarityInputs {
    pub source_sentence: String,
    pub sentences: Texts,
}

/// `POST /`'s `inputs` on an embedder: what `/embed` takes, or `/similarity`'s object.
#[derive(Debug)]
pub enum RootInputs {
    Embed(EmbedInputs),
    Similarity(SimilarityInputs),
}

impl Default for RootInputs {
    fn default() -> Self {
        RootInputs::Embed(EmbedInputs::default())
    }
}

impl<'de> Deserialize<'de> for RootInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RootInputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("what /embed or /similarity takes as inputs")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RootInputs, E> {
                EmbedVisitor.visit_str(v).map(RootInputs::Embed)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RootInputs, A::Error> {
                EmbedVisitor.visit_seq(seq).map(RootInputs::Embed)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RootInputs, A::Error> {
                let d = de::value::MapAccessDeserializer::new(map);
                SimilarityInputs::deserialize(d).map(RootInputs::Similarity)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests;
