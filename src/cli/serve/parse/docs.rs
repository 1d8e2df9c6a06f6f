//! `/embed`'s inputs with late chunking's documents: what [`EmbedInputs`] takes, where an
//! input may also be an object `{"text": ..., "chunks": [[start, end], ...]}` (character
//! spans, as `wgbert embed --late-chunking` reads them). The list is counted as every input
//! list is; the spans of one object are bounded by the payload limit here, and by
//! `--max-response-bytes` before any work (each span is one vector of the answer).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use wgbert::encoder::Input;

use super::{Batch, EmbedInputs, embed_seq};

/// `[start, end)` character spans of one document.
pub type Spans = Vec<(usize, usize)>;

/// One input object: its text and, where given, its chunks.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DocItem {
    pub text: String,
    #[serde(default)]
    pub chunks: Option<Spans>,
}

/// `/embed`'s `inputs`, with the spans of each input given as an object.
#[derive(Debug, Default)]
pub struct EmbedDocs {
    pub inputs: EmbedInputs,
    /// Per input, its own spans (`None`: a plain text, token ids, or an object without
    /// `chunks`); empty for a bare text.
    pub chunks: Vec<Option<Spans>>,
    /// Whether any input came as an object.
    pub objects: bool,
}

impl<'de> Deserialize<'de> for EmbedDocs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbedDocs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a text, a list of token ids, an object {\"text\", \"chunks\"}, or a list of them",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EmbedDocs, E> {
                Ok(EmbedDocs {
                    inputs: EmbedInputs(Batch::one(Input::Text(v.to_string()))),
                    chunks: Vec::new(),
                    objects: false,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EmbedDocs, A::Error> {
                let doc = DocItem::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(EmbedDocs {
                    inputs: EmbedInputs(Batch::one(Input::Text(doc.text))),
                    chunks: vec![doc.chunks],
                    objects: true,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EmbedDocs, A::Error> {
                let (inputs, given) = embed_seq(seq)?;
                let objects = given.iter().any(Option::is_some);
                let chunks = given.into_iter().map(Option::flatten).collect();
                Ok(EmbedDocs {
                    inputs,
                    chunks,
                    objects,
                })
            }
        }
        d.deserialize_any(V)
    }
}
