//! The options JavaScript passes as JSON, checked into the library's options: unknown keys
//! and bad values are errors that name them, as the command line's are.

use serde::Deserialize;
use wgbert::encoder::{EmbedOptions, EmbedPooling, Prompt, SparseOptions};
use wgbert::ops::DType;
use wgbert::{Error, Result};

fn parse<'a, T: Deserialize<'a> + Default>(what: &str, text: &'a str) -> Result<T> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_json::from_str(text).map_err(|e| Error::Option(format!("{what} options: {e}")))
}

/// `Model.load`'s options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadArgs {
    pub dtype: Option<String>,
    pub max_tokens: Option<usize>,
    pub truncate: Option<bool>,
}

impl LoadArgs {
    pub fn parse(text: &str) -> Result<Self> {
        parse("load", text)
    }

    /// The storage precision asked for; `None` picks f16 where the adapter has it.
    pub fn dtype(&self) -> Result<Option<DType>> {
        match self.dtype.as_deref() {
            None => Ok(None),
            Some("f32") => Ok(Some(DType::F32)),
            Some("f16") => Ok(Some(DType::F16)),
            Some(other) => Err(Error::Option(format!(
                "dtype must be \"f32\" or \"f16\", got {other:?}"
            ))),
        }
    }
}

/// `Model.embed`'s options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedArgs {
    pub normalize: Option<bool>,
    pub prompt: Option<String>,
    pub prompt_name: Option<String>,
    pub dimensions: Option<usize>,
    pub pooling: Option<String>,
    pub multi_vector: Option<String>,
    pub top_k_terms: Option<usize>,
}

impl EmbedArgs {
    pub fn parse(text: &str) -> Result<Self> {
        parse("embed", text)
    }

    fn prompt(&self) -> Result<Prompt> {
        match (&self.prompt, &self.prompt_name) {
            (Some(_), Some(_)) => Err(Error::Option(
                "give either prompt or prompt_name, not both".into(),
            )),
            (Some(text), None) => Ok(Prompt::Text(text.clone())),
            (None, Some(name)) => Ok(Prompt::Name(name.clone())),
            (None, None) => Ok(Prompt::ModelDefault),
        }
    }

    /// The options of a dense embedding.
    pub fn embed_options(&self) -> Result<EmbedOptions> {
        if self.top_k_terms.is_some() {
            return Err(Error::Option(
                "top_k_terms is for sparse models only".into(),
            ));
        }
        let pooling = match self.pooling.as_deref() {
            None => None,
            Some("cls") => Some(EmbedPooling::Cls),
            Some("mean") => Some(EmbedPooling::Mean),
            Some("none") => Some(EmbedPooling::None),
            Some(other) => {
                return Err(Error::Option(format!(
                    "pooling must be \"cls\", \"mean\" or \"none\", got {other:?}"
                )));
            }
        };
        Ok(EmbedOptions {
            prompt: self.prompt()?,
            dimensions: self.dimensions,
            normalize: self.normalize.unwrap_or(false),
            pooling,
        })
    }

    /// The options of a sparse embedding.
    pub fn sparse_options(&self) -> Result<SparseOptions> {
        if self.pooling.is_some() || self.dimensions.is_some() || self.normalize.is_some() {
            return Err(Error::Option(
                "a sparse model takes none of pooling, dimensions, normalize".into(),
            ));
        }
        Ok(SparseOptions {
            prompt: self.prompt()?,
            top_k: self.top_k_terms,
        })
    }

    /// `Some(is_query)` for ColBERT's per-token vectors.
    pub fn multi_vector(&self) -> Result<Option<bool>> {
        match self.multi_vector.as_deref() {
            None => Ok(None),
            Some("query") => Ok(Some(true)),
            Some("document") => Ok(Some(false)),
            Some(other) => Err(Error::Option(format!(
                "multi_vector must be \"query\" or \"document\", got {other:?}"
            ))),
        }
    }
}

/// `Model.rerank`'s options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RerankArgs {
    pub raw_scores: Option<bool>,
    pub top_n: Option<usize>,
}

impl RerankArgs {
    pub fn parse(text: &str) -> Result<Self> {
        parse("rerank", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_into_the_library_s() {
        let e = EmbedArgs::parse(r#"{"pooling": "none", "prompt_name": "query"}"#).unwrap();
        let o = e.embed_options().unwrap();
        assert_eq!(o.pooling, Some(EmbedPooling::None));
        assert_eq!(o.prompt, Prompt::Name("query".into()));
        assert_eq!(
            EmbedArgs::parse("").unwrap().embed_options().unwrap(),
            EmbedOptions::default()
        );
        assert_eq!(
            LoadArgs::parse(r#"{"dtype": "f16"}"#)
                .unwrap()
                .dtype()
                .unwrap(),
            Some(DType::F16)
        );
        assert_eq!(
            EmbedArgs::parse(r#"{"multi_vector": "query"}"#)
                .unwrap()
                .multi_vector()
                .unwrap(),
            Some(true)
        );
    }

    #[test]
    fn bad_options_are_errors_that_name_them() {
        let msg = |r: Result<()>| r.unwrap_err().to_string();
        let unknown = msg(EmbedArgs::parse(r#"{"pool": "cls"}"#).map(drop));
        assert!(unknown.contains("pool"), "{unknown}");
        let pooling = msg(EmbedArgs::parse(r#"{"pooling": "max"}"#)
            .unwrap()
            .embed_options()
            .map(drop));
        assert!(pooling.contains("max"), "{pooling}");
        let dtype = msg(LoadArgs::parse(r#"{"dtype": "bf16"}"#)
            .unwrap()
            .dtype()
            .map(drop));
        assert!(dtype.contains("bf16"), "{dtype}");
        let both = EmbedArgs::parse(r#"{"prompt": "q: ", "prompt_name": "query"}"#).unwrap();
        assert!(msg(both.embed_options().map(drop)).contains("not both"));
        assert!(msg(RerankArgs::parse("[1]").map(drop)).contains("rerank options"));
    }
}
