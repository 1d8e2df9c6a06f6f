//! Typed access to the keys of a config.json object, with errors that name the key.
//!
//! JSON `null` counts as absent, as transformers writes `null` for unset optional ids.

use std::path::Path;

use serde_json::{Map, Value};

use super::rope::RopeScaling;
use super::{Activation, LayerKind, Pooling, every_nth_global};
use crate::Error;

type Result<T> = std::result::Result<T, Error>;

/// The layer kinds, and the RoPE thetas and scalings of (global, local) layers.
pub(super) struct Layers {
    pub kinds: Vec<LayerKind>,
    pub thetas: (f32, f32),
    pub scalings: (RopeScaling, RopeScaling),
}

/// The top-level object of a config.json and the path its errors name.
pub(super) struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

/// A short rendering of a JSON value for error messages.
fn show(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let head: String = text.chars().take(57).collect();
        format!("{head}...")
    } else {
        text
    }
}

fn as_usize(value: &Value) -> Option<usize> {
    if let Some(n) = value.as_u64() {
        return usize::try_from(n).ok();
    }
    // Some writers emit `768.0`; accept integral floats.
    let x = value.as_f64()?;
    (x >= 0.0 && x.fract() == 0.0 && x < 9.0e15).then_some(x as usize)
}

impl<'a> Fields<'a> {
    pub(super) fn new(obj: &'a Map<String, Value>, path: &'a Path) -> Self {
        Fields { obj, path }
    }

    pub(super) fn err(&self, message: String) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            message,
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> Error {
        self.err(format!("`{key}` must be {expected}, found {}", show(found)))
    }

    pub(super) fn req_usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| self.err(format!("missing required field `{key}`")))
    }

    pub(super) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => as_usize(v)
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a non-negative integer", v)),
        }
    }

    pub(super) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a number", v)),
        }
    }

    pub(super) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "true or false", v)),
        }
    }

    pub(super) fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a string", v)),
        }
    }

    pub(super) fn activation(&self, key: &str, default: Activation) -> Result<Activation> {
        match self.opt_str(key)? {
            None => Ok(default),
            Some(name) => Activation::from_name(name).ok_or_else(|| {
                self.err(format!(
                    "`{key}` = '{name}' is not supported (use gelu, gelu_pytorch_tanh, gelu_new, \
                     gelu_fast, silu, swish or relu)"
                ))
            }),
        }
    }

    pub(super) fn pooling(&self, key: &str, default: Pooling) -> Result<Pooling> {
        match self.opt_str(key)? {
            None => Ok(default),
            Some(name) => Pooling::from_name(name).ok_or_else(|| {
                self.err(format!(
                    "`{key}` = '{name}' is not supported (use 'cls' or 'mean')"
                ))
            }),
        }
    }

    pub(super) fn token_id(&self, key: &str) -> Result<Option<u32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => as_usize(v)
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "a token id (integer below 2^32)", v)),
        }
    }

    pub(super) fn str_list(&self, key: &str) -> Result<Vec<String>> {
        let Some(v) = self.get(key) else {
            return Ok(Vec::new());
        };
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(key, "a list of strings", v))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.wrong_type(key, "a list of strings", v))
            })
            .collect()
    }

    /// `id2label` ordered by id; ids must be exactly 0..n. Falls back to `num_labels`.
    pub(super) fn id2label(&self) -> Result<Vec<String>> {
        let Some(v) = self.get("id2label") else {
            let n = self.opt_usize("num_labels")?.unwrap_or(0);
            if n > 1 << 20 {
                return Err(self.err(format!("`num_labels` = {n} is implausibly large")));
            }
            return Ok((0..n).map(|i| format!("LABEL_{i}")).collect());
        };
        let map = v
            .as_object()
            .ok_or_else(|| self.wrong_type("id2label", "an object {\"0\": \"name\", ...}", v))?;
        let mut slots: Vec<Option<String>> = vec![None; map.len()];
        for (key, name) in map {
            let id: usize = key.trim().parse().map_err(|_| {
                self.err(format!(
                    "`id2label` key '{key}' is not a non-negative integer"
                ))
            })?;
            let name = name
                .as_str()
                .ok_or_else(|| self.wrong_type(&format!("id2label[{key}]"), "a string", name))?;
            let Some(slot) = slots.get_mut(id) else {
                return Err(self.err(format!(
                    "`id2label` has {} entries but id {id}: ids must be 0..{}",
                    map.len(),
                    map.len()
                )));
            };
            *slot = Some(name.to_owned());
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(id, slot)| {
                slot.ok_or_else(|| self.err(format!("`id2label` has no entry for id {id}")))
            })
            .collect()
    }

    /// Resolves per-layer kinds and the two RoPE thetas and scalings from either dialect
    /// (`max_positions`: the model's length, which some scalings read).
    pub(super) fn layers(&self, n_layers: usize, max_positions: usize) -> Result<Layers> {
        let kinds = match self.get("layer_types") {
            Some(v) => {
                let items = v
                    .as_array()
                    .ok_or_else(|| self.wrong_type("layer_types", "a list of strings", v))?;
                if items.len() != n_layers {
                    return Err(self.err(format!(
                        "`layer_types` has {} entries but `num_hidden_layers` is {n_layers}",
                        items.len()
                    )));
                }
                let parse = |(i, item): (usize, &Value)| {
                    item.as_str().and_then(LayerKind::from_name).ok_or_else(|| {
                        self.err(format!(
                            "`layer_types[{i}]` = {} is not a known layer type \
                             ('full_attention' or 'sliding_attention')",
                            show(item)
                        ))
                    })
                };
                items
                    .iter()
                    .enumerate()
                    .map(parse)
                    .collect::<Result<Vec<_>>>()?
            }
            None => {
                let every = self.opt_usize("global_attn_every_n_layers")?.unwrap_or(3);
                if every == 0 {
                    return Err(
                        self.err("`global_attn_every_n_layers` is 0; it must be at least 1".into())
                    );
                }
                every_nth_global(n_layers.min(super::MAX_LAYERS + 1), every)
            }
        };
        let global = self.theta(
            LayerKind::Global,
            "global_rope_theta",
            160_000.0,
            max_positions,
        )?;
        let local = self.theta(
            LayerKind::Local,
            "local_rope_theta",
            10_000.0,
            max_positions,
        )?;
        Ok(Layers {
            kinds,
            thetas: (global.0 as f32, local.0 as f32),
            scalings: (global.1, local.1),
        })
    }

    /// `rope_parameters[kind].rope_theta` (else the 4.x key, else the default) and the
    /// entry's scaling (`rope_type` and its keys; `RopeScaling::Default` without an entry).
    fn theta(
        &self,
        kind: LayerKind,
        old_key: &str,
        default: f64,
        max_positions: usize,
    ) -> Result<(f64, RopeScaling)> {
        // The older `rope_scaling` key: transformers merges it into both kinds' entries.
        if let Some(old) = self.get("rope_scaling") {
            let scaling_obj = old
                .as_object()
                .ok_or_else(|| self.wrong_type("rope_scaling", "an object", old))?;
            let mut merged = match self.get("rope_parameters").map(|p| p.get(kind.name())) {
                Some(Some(Value::Object(e))) => e.clone(),
                _ => Map::new(),
            };
            merged.extend(scaling_obj.clone());
            let scaling = RopeScaling::parse(&merged, "rope_scaling", true, max_positions)
                .map_err(|m| self.err(m))?;
            let theta = match merged.get("rope_theta").and_then(Value::as_f64) {
                Some(t) => t,
                None => self.opt_f64(old_key)?.unwrap_or(default),
            };
            return Ok((theta, scaling));
        }
        if let Some(params) = self.get("rope_parameters") {
            let obj = params
                .as_object()
                .ok_or_else(|| self.wrong_type("rope_parameters", "an object", params))?;
            // Per-kind entries are the ModernBERT layout; a flat object applies to both kinds.
            let (entry, label) = match obj.get(kind.name()) {
                Some(e) if !e.is_null() => (e, format!("rope_parameters.{}", kind.name())),
                _ => (params, "rope_parameters".to_owned()),
            };
            let entry_obj = entry
                .as_object()
                .ok_or_else(|| self.wrong_type(&label, "an object", entry))?;
            // transformers' yarn reads `truncate` from the top level, not from the entry.
            let truncate = obj.get("truncate").and_then(Value::as_bool).unwrap_or(true);
            let scaling = RopeScaling::parse(entry_obj, &label, truncate, max_positions)
                .map_err(|m| self.err(m))?;
            if let Some(theta) = entry_obj.get("rope_theta").filter(|t| !t.is_null()) {
                let theta = theta.as_f64().ok_or_else(|| {
                    self.wrong_type(&format!("{label}.rope_theta"), "a number", theta)
                })?;
                return Ok((theta, scaling));
            }
            return Ok((self.opt_f64(old_key)?.unwrap_or(default), scaling));
        }
        Ok((
            self.opt_f64(old_key)?.unwrap_or(default),
            RopeScaling::Default,
        ))
    }
}
