//! Scaled rotary embeddings: every `rope_type` transformers 5 accepts in a ModernBERT
//! `rope_parameters` entry, resolved to what the kernels take: per layer kind, the
//! frequencies `inv_freq[c]` (c < head_dim / 2) and the `attention_factor` transformers
//! multiplies cos and sin by. Formulas as `transformers.modeling_rope_utils` computes them
//! when the model is built, in f32 where it works in f32:
//!
//! | type | frequencies | attention factor |
//! |---|---|---|
//! | default | `1 / theta^(2c/d)` | 1 |
//! | linear | default / `factor` | 1 |
//! | dynamic | default at `theta * (factor * L / L - (factor - 1))^(d / (d - 2))`, L = `max_position_embeddings`: transformers recomputes them only for inputs over L, which wgbert refuses, so this is theta itself | 1 |
//! | yarn | interpolation (/ `factor`) and extrapolation blended by a ramp between `beta_fast` and `beta_slow` rotations over `original_max_position_embeddings` | `attention_factor`, else from `mscale`, `mscale_all_dim`, else `0.1 ln(factor) + 1` |
//! | longrope | default / `short_factor[c]` | `attention_factor`, else `sqrt(1 + ln(factor) / ln(original))` where factor > 1 |
//! | llama3 | default, divided by `factor` past `original / low_freq_factor` wavelengths, smoothed between | 1 |
//! | proportional | default over `head_dim` for the first `partial_rotary_factor` of the pairs, 0 (no rotation) after, all / `factor` | 1 |
//!
//! Refused at load, naming the type and key: `longrope` whose `original_max_position_embeddings`
//! is below `max_position_embeddings` (transformers switches to `long_factor` for a batch
//! whose longest input passes it: a result would depend on its batch), `partial_rotary_factor`
//! other than 1 outside `proportional` (transformers' ModernBERT cannot apply it), and any
//! other type.

use std::f64::consts::PI;

use serde_json::{Map, Value};

/// The scaling of one layer kind's RoPE, as `rope_parameters` gives it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RopeScaling {
    #[default]
    Default,
    Linear {
        factor: f64,
    },
    Dynamic {
        factor: f64,
    },
    Yarn {
        factor: f64,
        original: f64,
        attention_factor: Option<f64>,
        mscale: Option<f64>,
        mscale_all_dim: Option<f64>,
        beta_fast: f64,
        beta_slow: f64,
        truncate: bool,
    },
    LongRope {
        short_factor: Vec<f64>,
        factor: Option<f64>,
        attention_factor: Option<f64>,
        original: f64,
    },
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original: f64,
    },
    Proportional {
        factor: f64,
        partial_rotary_factor: f64,
    },
}

impl RopeScaling {
    /// The `rope_type` this scaling came from.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Linear { .. } => "linear",
            Self::Dynamic { .. } => "dynamic",
            Self::Yarn { .. } => "yarn",
            Self::LongRope { .. } => "longrope",
            Self::Llama3 { .. } => "llama3",
            Self::Proportional { .. } => "proportional",
        }
    }

    /// Reads one `rope_parameters` entry (`label` names it in errors); `truncate` is the
    /// top-level `rope_parameters.truncate` that transformers' yarn reads (true when absent).
    pub fn parse(
        entry: &Map<String, Value>,
        label: &str,
        truncate: bool,
        max_positions: usize,
    ) -> Result<Self, String> {
        let get = |k: &str| entry.get(k).filter(|v| !v.is_null());
        let num = |k: &str| -> Result<Option<f64>, String> {
            match get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .map(Some)
                    .ok_or_else(|| format!("`{label}.{k}` must be a finite number, found {v}")),
            }
        };
        let req = |k: &str, t: &str| -> Result<f64, String> {
            num(k)?.ok_or_else(|| format!("`{label}.{k}` is required with rope_type '{t}'"))
        };
        let kind = match get("rope_type").or_else(|| get("type")) {
            None => "default",
            Some(v) => v
                .as_str()
                .ok_or_else(|| format!("`{label}.rope_type` must be a string, found {v}"))?,
        };
        let prf = num("partial_rotary_factor")?.unwrap_or(1.0);
        if prf != 1.0 && kind != "proportional" {
            return Err(format!(
                "`{label}.partial_rotary_factor` = {prf} with rope_type '{kind}': partial \
                 rotation is supported with rope_type 'proportional' only"
            ));
        }
        let original = num("original_max_position_embeddings")?;
        let scaling = match kind {
            "default" => Self::Default,
            "linear" => Self::Linear {
                factor: req("factor", kind)?,
            },
            "dynamic" => Self::Dynamic {
                factor: req("factor", kind)?,
            },
            "yarn" => {
                let original = original.ok_or_else(|| {
                    format!("`{label}.original_max_position_embeddings` is required with yarn")
                })?;
                Self::Yarn {
                    factor: num("factor")?.unwrap_or(max_positions as f64 / original),
                    original,
                    attention_factor: num("attention_factor")?,
                    mscale: num("mscale")?,
                    mscale_all_dim: num("mscale_all_dim")?,
                    beta_fast: num("beta_fast")?.filter(|&b| b != 0.0).unwrap_or(32.0),
                    beta_slow: num("beta_slow")?.filter(|&b| b != 0.0).unwrap_or(1.0),
                    truncate,
                }
            }
            "longrope" => {
                let original = original.unwrap_or(max_positions as f64);
                if original < max_positions as f64 {
                    return Err(format!(
                        "`{label}.rope_type` 'longrope' with original_max_position_embeddings \
                         {original} below max_position_embeddings {max_positions}: \
                         transformers switches to long_factor for a batch whose longest input \
                         passes {original} tokens, so a result would depend on its batch; not \
                         supported"
                    ));
                }
                let short = get("short_factor")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("`{label}.short_factor` must be a list of numbers"))?;
                let short_factor = short
                    .iter()
                    .map(|v| v.as_f64().filter(|x| x.is_finite() && *x > 0.0))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| format!("`{label}.short_factor` must hold positive numbers"))?;
                Self::LongRope {
                    short_factor,
                    factor: num("factor")?,
                    attention_factor: num("attention_factor")?,
                    original,
                }
            }
            "llama3" => Self::Llama3 {
                factor: req("factor", kind)?,
                low_freq_factor: req("low_freq_factor", kind)?,
                high_freq_factor: req("high_freq_factor", kind)?,
                original: original.ok_or_else(|| {
                    format!("`{label}.original_max_position_embeddings` is required with llama3")
                })?,
            },
            "proportional" => Self::Proportional {
                factor: num("factor")?.unwrap_or(1.0),
                partial_rotary_factor: prf,
            },
            other => {
                return Err(format!(
                    "`{label}.rope_type` = '{other}' is not supported (default, linear, \
                     dynamic, yarn, longrope, llama3, proportional)"
                ));
            }
        };
        Ok(scaling)
    }

    /// `(inv_freq, attention_factor)` for heads of `dim` at base `theta`, a model of
    /// `max_positions` positions; an error names what is out of range.
    pub fn frequencies(
        &self,
        theta: f32,
        dim: usize,
        max_positions: usize,
    ) -> Result<(Vec<f32>, f32), String> {
        let half = dim / 2;
        let base = || crate::ops::rope::inv_freq(dim as u32, theta);
        let (inv, factor) = match self {
            Self::Default => (base(), 1.0),
            Self::Linear { factor } => {
                let f = positive("factor", *factor)? as f32;
                (base().iter().map(|x| x / f).collect(), 1.0)
            }
            Self::Dynamic { factor } => {
                // At the model's own length the ratio below is 1: theta itself.
                let l = max_positions as f64;
                let ratio = factor * l / l - (factor - 1.0);
                if dim <= 2 {
                    return Err("rope_type 'dynamic' needs a head_dim above 2".into());
                }
                let t = theta as f64 * ratio.powf(dim as f64 / (dim as f64 - 2.0));
                (crate::ops::rope::inv_freq(dim as u32, t as f32), 1.0)
            }
            Self::Yarn { .. } => self.yarn(theta, dim)?,
            Self::LongRope {
                short_factor,
                factor,
                attention_factor,
                original,
            } => {
                if short_factor.len() != half {
                    return Err(format!(
                        "`short_factor` has {} entries; head_dim {dim} needs {half}",
                        short_factor.len()
                    ));
                }
                let factor = factor.unwrap_or(max_positions as f64 / original);
                let af = attention_factor.unwrap_or(if factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + factor.ln() / original.ln()).sqrt()
                });
                let inv = crate::ops::rope::powers(dim as u32, theta)
                    .iter()
                    .zip(short_factor)
                    .map(|(&pw, &s)| 1.0 / (s as f32 * pw))
                    .collect();
                (inv, af)
            }
            Self::Llama3 { .. } => (self.llama3(theta, dim)?, 1.0),
            Self::Proportional {
                factor,
                partial_rotary_factor,
            } => {
                let f = positive("factor", *factor)? as f32;
                let angles = ((partial_rotary_factor * dim as f64) / 2.0)
                    .floor()
                    .max(0.0);
                let angles = (angles as usize).min(half);
                let mut inv = base();
                inv[angles..].fill(0.0);
                (inv.iter().map(|x| x / f).collect(), 1.0)
            }
        };
        if let Some(bad) = inv.iter().find(|x| !(x.is_finite() && **x >= 0.0)) {
            return Err(format!(
                "rope_type '{}' gives a frequency of {bad}",
                self.name()
            ));
        }
        let af = factor as f32;
        if !(af.is_finite() && af > 0.0) {
            return Err(format!(
                "rope_type '{}' gives an attention factor of {af}",
                self.name()
            ));
        }
        Ok((inv, af))
    }

    fn yarn(&self, theta: f32, dim: usize) -> Result<(Vec<f32>, f64), String> {
        let &Self::Yarn {
            factor,
            original,
            attention_factor,
            mscale,
            mscale_all_dim,
            beta_fast,
            beta_slow,
            truncate,
        } = self
        else {
            return Err("not yarn".into());
        };
        let mscale_of = |scale: f64, m: f64| {
            if scale <= 1.0 {
                1.0
            } else {
                0.1 * m * scale.ln() + 1.0
            }
        };
        let af = match (attention_factor, mscale, mscale_all_dim) {
            (Some(a), _, _) => a,
            (None, Some(m), Some(all)) if m != 0.0 && all != 0.0 => {
                mscale_of(factor, m) / mscale_of(factor, all)
            }
            _ => mscale_of(factor, 1.0),
        };
        let base = theta as f64;
        let correction = |rotations: f64| {
            (dim as f64 * (original / (rotations * 2.0 * PI)).ln()) / (2.0 * base.ln())
        };
        let (mut low, mut high) = (correction(beta_fast), correction(beta_slow));
        if truncate {
            (low, high) = (low.floor(), high.ceil());
        }
        let (low, mut high) = (low.max(0.0), high.min(dim as f64 - 1.0));
        if low == high {
            high += 0.001;
        }
        let f = positive("factor", factor)? as f32;
        let inv = crate::ops::rope::powers(dim as u32, theta)
            .iter()
            .enumerate()
            .map(|(c, &pos_freq)| {
                let extrapolation = 1.0 / pos_freq;
                let interpolation = 1.0 / (f * pos_freq);
                let ramp = ((c as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                let keep = 1.0 - ramp;
                interpolation * (1.0 - keep) + extrapolation * keep
            })
            .collect();
        Ok((inv, af))
    }

    fn llama3(&self, theta: f32, dim: usize) -> Result<Vec<f32>, String> {
        let &Self::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original,
        } = self
        else {
            return Err("not llama3".into());
        };
        if high_freq_factor == low_freq_factor {
            return Err("llama3's high_freq_factor equals its low_freq_factor".into());
        }
        let f = positive("factor", factor)? as f32;
        // transformers compares its f32 wavelengths with these as f32.
        let low_wavelen = (original / low_freq_factor) as f32;
        let high_wavelen = (original / high_freq_factor) as f32;
        Ok(crate::ops::rope::inv_freq(dim as u32, theta)
            .iter()
            .map(|&inv| {
                let wavelen = (2.0 * PI) as f32 / inv;
                let scaled = if wavelen > low_wavelen { inv / f } else { inv };
                let smooth = (original as f32 / wavelen - low_freq_factor as f32)
                    / (high_freq_factor - low_freq_factor) as f32;
                let smoothed = (1.0 - smooth) * scaled / f + smooth * scaled;
                // Neither side of the band (wavelengths are finite: inv > 0).
                let medium = wavelen >= high_wavelen && wavelen <= low_wavelen;
                if medium { smoothed } else { scaled }
            })
            .collect())
    }
}

fn positive(key: &str, x: f64) -> Result<f64, String> {
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(format!("`{key}` = {x} must be a positive number"))
    }
}

#[cfg(test)]
mod tests {
    use super::RopeScaling;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<RopeScaling, String> {
        RopeScaling::parse(
            v.as_object().unwrap(),
            "rope_parameters.full_attention",
            true,
            512,
        )
    }

    #[test]
    fn linear_divides_and_proportional_stops_rotating() {
        let base = crate::ops::rope::inv_freq(16, 1e4);
        let (inv, af) = parse(json!({"rope_type": "linear", "factor": 4.0}))
            .unwrap()
            .frequencies(1e4, 16, 512)
            .unwrap();
        assert_eq!(af, 1.0);
        assert!(inv.iter().zip(&base).all(|(a, b)| *a == b / 4.0));
        let p = json!({"rope_type": "proportional", "partial_rotary_factor": 0.5});
        let (inv, _) = parse(p).unwrap().frequencies(1e4, 16, 512).unwrap();
        assert_eq!(&inv[..4], &base[..4]);
        assert!(inv[4..].iter().all(|&x| x == 0.0));
    }

    #[test]
    fn dynamic_at_its_own_length_is_the_default() {
        let d = parse(json!({"rope_type": "dynamic", "factor": 2.0})).unwrap();
        let (inv, _) = d.frequencies(1e4, 16, 512).unwrap();
        assert_eq!(inv, crate::ops::rope::inv_freq(16, 1e4));
    }

    #[test]
    fn yarn_keeps_fast_and_scales_slow_frequencies() {
        let y =
            json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 128});
        let (inv, af) = parse(y).unwrap().frequencies(1e4, 16, 512).unwrap();
        let base = crate::ops::rope::inv_freq(16, 1e4);
        assert_eq!(inv[0], base[0]);
        assert!((inv[7] - base[7] / 4.0).abs() <= 1e-9);
        assert!((af as f64 - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn what_cannot_be_matched_is_refused_by_name() {
        let e = parse(
            json!({"rope_type": "longrope", "short_factor": vec![1.0; 8],
                             "long_factor": vec![2.0; 8], "original_max_position_embeddings": 128}),
        )
        .unwrap_err();
        assert!(e.contains("longrope") && e.contains("128"), "{e}");
        let e = parse(json!({"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.5}))
            .unwrap_err();
        assert!(e.contains("partial_rotary_factor"), "{e}");
        let e = parse(json!({"rope_type": "ntk-by-parts"})).unwrap_err();
        assert!(e.contains("'ntk-by-parts'"), "{e}");
        let e = parse(json!({"rope_type": "llama3", "factor": 8.0})).unwrap_err();
        assert!(e.contains("low_freq_factor"), "{e}");
    }
}
