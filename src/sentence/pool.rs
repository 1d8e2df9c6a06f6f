//! The Pooling module: per-token states to one vector, as sentence-transformers computes it.
//! Several modes concatenate in sentence-transformers' order (cls, max, mean,
//! mean_sqrt_len_tokens, weightedmean, lasttoken). With `include_prompt: false` the first
//! `skip` tokens (`[CLS]` and the prompt's tokens) are left out of the masked modes.

use std::path::Path;

use serde_json::Value;

use super::layout_err;
use crate::Result;

/// One pooling mode of sentence-transformers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolingMode {
    Cls,
    Max,
    Mean,
    MeanSqrtLenTokens,
    WeightedMean,
    LastToken,
}

/// (config key of the boolean form, `pooling_mode` name, mode), in concatenation order.
const MODES: [(&str, &str, PoolingMode); 6] = [
    ("pooling_mode_cls_token", "cls", PoolingMode::Cls),
    ("pooling_mode_max_tokens", "max", PoolingMode::Max),
    ("pooling_mode_mean_tokens", "mean", PoolingMode::Mean),
    (
        "pooling_mode_mean_sqrt_len_tokens",
        "mean_sqrt_len_tokens",
        PoolingMode::MeanSqrtLenTokens,
    ),
    (
        "pooling_mode_weightedmean_tokens",
        "weightedmean",
        PoolingMode::WeightedMean,
    ),
    (
        "pooling_mode_lasttoken",
        "lasttoken",
        PoolingMode::LastToken,
    ),
];

/// A Pooling module's configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PoolingConfig {
    /// The modes whose results are concatenated, in order.
    pub modes: Vec<PoolingMode>,
    /// Whether prompt tokens count in the masked modes (mean, max, ...).
    pub include_prompt: bool,
    /// `word_embedding_dimension`, when given.
    pub dimension: Option<usize>,
}

impl PoolingConfig {
    /// One mode, prompt tokens included.
    pub fn single(mode: PoolingMode) -> Self {
        PoolingConfig {
            modes: vec![mode],
            include_prompt: true,
            dimension: None,
        }
    }

    /// Parses a Pooling `config.json`: `"pooling_mode": "mean"` (or a list of modes) or the
    /// older boolean keys `pooling_mode_*` (none set means mean, as sentence-transformers
    /// reads it), plus `include_prompt` (default true).
    pub fn from_json(v: &Value, path: &Path) -> Result<Self> {
        let obj = v
            .as_object()
            .ok_or_else(|| layout_err(path, "the Pooling config is not a JSON object"))?;
        let mut modes = Vec::new();
        let by_name = |name: &Value| -> Result<PoolingMode> {
            let found = name.as_str().and_then(|n| MODES.iter().find(|m| m.1 == n));
            found.map(|m| m.2).ok_or_else(|| {
                let known: Vec<&str> = MODES.iter().map(|m| m.1).collect();
                let message = format!("unknown pooling_mode {name} (known: {})", known.join(", "));
                layout_err(path, message)
            })
        };
        match obj.get("pooling_mode") {
            Some(Value::Array(names)) => {
                for name in names {
                    modes.push(by_name(name)?);
                }
            }
            Some(name) => modes.push(by_name(name)?),
            None => {
                for (key, _, mode) in MODES {
                    match obj.get(key) {
                        Some(Value::Bool(true)) => modes.push(mode),
                        Some(Value::Bool(false)) | None => {}
                        Some(other) => {
                            return Err(layout_err(
                                path,
                                format!("{key} must be true or false, got {other}"),
                            ));
                        }
                    }
                }
            }
        }
        if modes.is_empty() {
            modes.push(PoolingMode::Mean);
        }
        let include_prompt = match obj.get("include_prompt") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(layout_err(
                    path,
                    format!("include_prompt must be true or false, got {other}"),
                ));
            }
        };
        let dim = obj
            .get("embedding_dimension")
            .or_else(|| obj.get("word_embedding_dimension"));
        let dimension = match dim {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|&d| d > 0)
                    .ok_or_else(|| layout_err(path, format!("bad embedding_dimension {v}")))?
                    as usize,
            ),
        };
        Ok(PoolingConfig {
            modes,
            include_prompt,
            dimension,
        })
    }

    /// The pooled width for hidden states of width `hidden`.
    pub fn output_dim(&self, hidden: usize) -> usize {
        self.modes.len() * hidden
    }

    /// Pools one sequence's states `[len][hidden]`; `skip` leading tokens are masked out
    /// (when prompts are excluded).
    pub fn pool(&self, states: &[Vec<f32>], skip: usize) -> Vec<f32> {
        let skip = if self.include_prompt { 0 } else { skip };
        let hidden = states.first().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(self.output_dim(hidden));
        for &mode in &self.modes {
            out.extend(pool_one(mode, states, skip, hidden));
        }
        out
    }
}

/// One mode over `states[skip..]` (the mask), as sentence-transformers computes it: masked
/// sums over the kept tokens, counts clamped at 1e-9, max over the kept tokens; cls is the
/// first kept token, lasttoken the last.
fn pool_one(mode: PoolingMode, states: &[Vec<f32>], skip: usize, hidden: usize) -> Vec<f32> {
    let kept = states.get(skip.min(states.len())..).unwrap_or(&[]);
    let weighted_sum = |weight: &dyn Fn(usize) -> f64| -> (Vec<f64>, f64) {
        let mut sum = vec![0f64; hidden];
        let mut total = 0f64;
        for (i, row) in kept.iter().enumerate() {
            let w = weight(skip + i);
            total += w;
            sum.iter_mut()
                .zip(row)
                .for_each(|(s, &x)| *s += w * x as f64);
        }
        (sum, total.max(1e-9))
    };
    let to_f32 =
        |v: Vec<f64>, d: f64| -> Vec<f32> { v.into_iter().map(|x| (x / d) as f32).collect() };
    match mode {
        PoolingMode::Cls => kept.first().cloned().unwrap_or_else(|| vec![0.0; hidden]),
        PoolingMode::LastToken => kept.last().cloned().unwrap_or_else(|| vec![0.0; hidden]),
        PoolingMode::Max => (0..hidden)
            .map(|c| kept.iter().map(|r| r[c]).fold(f32::NEG_INFINITY, f32::max))
            .collect(),
        PoolingMode::Mean => {
            let (s, n) = weighted_sum(&|_| 1.0);
            to_f32(s, n)
        }
        PoolingMode::MeanSqrtLenTokens => {
            let (s, n) = weighted_sum(&|_| 1.0);
            to_f32(s, n.sqrt())
        }
        PoolingMode::WeightedMean => {
            let (s, n) = weighted_sum(&|pos| (pos + 1) as f64);
            to_f32(s, n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_config_forms_parse_the_same() {
        let p = Path::new("1_Pooling/config.json");
        let old = json!({"word_embedding_dimension": 4, "pooling_mode_cls_token": false,
            "pooling_mode_mean_tokens": true, "pooling_mode_max_tokens": false});
        let new = json!({"word_embedding_dimension": 4, "pooling_mode": "mean"});
        let a = PoolingConfig::from_json(&old, p).unwrap();
        assert_eq!(a, PoolingConfig::from_json(&new, p).unwrap());
        assert_eq!(a.modes, [PoolingMode::Mean]);
        let e = PoolingConfig::from_json(&json!({"pooling_mode": "avg"}), p).unwrap_err();
        assert!(
            e.to_string().contains("unknown pooling_mode \"avg\""),
            "{e}"
        );
        let list = json!({"pooling_mode": ["cls", "mean"], "include_prompt": false});
        let c = PoolingConfig::from_json(&list, p).unwrap();
        assert_eq!(c.modes, [PoolingMode::Cls, PoolingMode::Mean]);
        assert!(!c.include_prompt);
        let none = PoolingConfig::from_json(&json!({"pooling_mode_cls_token": false}), p);
        assert_eq!(
            none.unwrap().modes,
            [PoolingMode::Mean],
            "none set reads as mean"
        );
    }

    #[test]
    fn modes_pool_as_sentence_transformers() {
        let states = vec![vec![1.0, -2.0], vec![3.0, 4.0], vec![5.0, 0.0]];
        let mut cfg = PoolingConfig::single(PoolingMode::Mean);
        assert_eq!(cfg.pool(&states, 2), [3.0, 2.0 / 3.0]);
        cfg.include_prompt = false;
        assert_eq!(cfg.pool(&states, 2), [5.0, 0.0], "prompt tokens left out");
        let close = |got: Vec<f32>, want: &[f64]| {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(want) {
                assert!((*g as f64 - w).abs() < 1e-6, "{got:?} vs {want:?}");
            }
        };
        cfg.modes = vec![
            PoolingMode::Cls,
            PoolingMode::Max,
            PoolingMode::WeightedMean,
        ];
        cfg.include_prompt = true;
        let w = [(1.0 + 6.0 + 15.0) / 6.0, (-2.0 + 8.0) / 6.0];
        close(cfg.pool(&states, 0), &[1.0, -2.0, 5.0, 4.0, w[0], w[1]]);
        cfg.modes = vec![PoolingMode::MeanSqrtLenTokens, PoolingMode::LastToken];
        let r = 3f64.sqrt();
        close(cfg.pool(&states, 0), &[9.0 / r, 2.0 / r, 5.0, 0.0]);
        cfg.modes = vec![PoolingMode::Cls];
        cfg.include_prompt = false;
        close(cfg.pool(&states, 1), &[3.0, 4.0]);
    }
}
