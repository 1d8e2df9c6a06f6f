//! `/predict`'s inputs, as TEI's router reads them: a text, one (text, text) pair, or a batch
//! of texts and pairs. The first element of a list decides which, and a sequence holds at
//! most two strings, so no element is parsed past what it may hold.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use wgbert::encoder::Input;

use super::{Batch, count};

/// A list of 1 or 2 strings: a text or a pair.
fn sequence<E: de::Error>(mut v: Vec<String>) -> Result<Input, E> {
    match v.len() {
        1 => Ok(Input::Text(v.remove(0))),
        2 => {
            let b = v.remove(1);
            Ok(Input::Pair(v.remove(0), b))
        }
        n => Err(E::invalid_length(n, &"a text [a] or a pair [a, b]")),
    }
}

/// A bounded list of strings (at most 2, as TEI's sequences).
struct Strings(Vec<String>);

impl<'de> Deserialize<'de> for Strings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of one or two texts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strings, A::Error> {
                let mut v = Vec::with_capacity(2);
                while let Some(s) = seq.next_element::<String>()? {
                    if v.len() == 2 {
                        return Err(de::Error::invalid_length(3, &self));
                    }
                    v.push(s);
                }
                Ok(Strings(v))
            }
        }
        d.deserialize_seq(V)
    }
}

/// `/predict`'s `inputs`, as TEI reads them: `"text"`, `["a", "b"]` (one pair), or a batch
/// of texts and pairs `[["a"], ["a", "b"], ...]`.
#[derive(Debug, Default)]
pub struct PredictInputs(pub Batch<Input>);

/// The first element of a `/predict` list decides whether it is one pair or a batch.
enum PredictFirst {
    Text(String),
    Sequence(Vec<String>),
}

impl<'de> Deserialize<'de> for PredictFirst {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PredictFirst;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, or a list of one or two texts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PredictFirst, E> {
                Ok(PredictFirst::Text(v.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PredictFirst, A::Error> {
                let Strings(v) = Strings::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(PredictFirst::Sequence(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for PredictInputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PredictInputs;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a text, a pair of texts [a, b], or a batch [[a], [a, b], ...]")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PredictInputs, E> {
                Ok(PredictInputs(Batch::one(Input::Text(v.to_string()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PredictInputs, A::Error> {
                let first = match seq.next_element::<PredictFirst>()? {
                    None => return Ok(PredictInputs::default()),
                    Some(PredictFirst::Text(a)) => {
                        // `["a"]` is one text, `["a", "b"]` one pair.
                        let b = seq.next_element::<String>()?;
                        if seq.next_element::<String>()?.is_some() {
                            return Err(de::Error::invalid_length(3, &self));
                        }
                        let one = match b {
                            Some(b) => Input::Pair(a, b),
                            None => Input::Text(a),
                        };
                        return Ok(PredictInputs(Batch::one(one)));
                    }
                    Some(PredictFirst::Sequence(v)) => sequence(v)?,
                };
                let mut n = 0;
                count(&mut n)?;
                let mut items = vec![first];
                while let Some(Strings(v)) = seq.next_element::<Strings>()? {
                    count(&mut n)?;
                    items.push(sequence(v)?);
                }
                Ok(PredictInputs(Batch {
                    items,
                    single: false,
                }))
            }
        }
        d.deserialize_any(V)
    }
}
