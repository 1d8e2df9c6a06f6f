//! The Dense module: `activation(x W^T + b)` on one vector (sentence-transformers) or on every
//! token's vector (PyLate). Small enough for the CPU: f32 weights, f64 sums.

use std::path::Path;

use serde_json::Value;

use super::layout_err;
use crate::Result;
use crate::files::FileStore;
use crate::model::weights::Checkpoint;

/// An activation named by a dotted torch path (`torch.nn.modules.activation.Tanh`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Tanh,
    Sigmoid,
    Relu,
}

impl Activation {
    /// Parses `torch.nn.modules.activation.Tanh`, `torch.nn.Tanh` or `Tanh` (and so on for
    /// Identity, Sigmoid, ReLU); anything else is `None`.
    pub fn from_torch_path(path: &str) -> Option<Self> {
        let name = path.rsplit('.').next().unwrap_or(path);
        let module_ok = matches!(
            path.strip_suffix(name).unwrap_or(""),
            "" | "torch.nn." | "torch.nn.modules.activation." | "torch.nn.modules.linear."
        );
        if !module_ok {
            return None;
        }
        match name {
            "Identity" => Some(Self::Identity),
            "Tanh" => Some(Self::Tanh),
            "Sigmoid" => Some(Self::Sigmoid),
            "ReLU" => Some(Self::Relu),
            _ => None,
        }
    }

    /// Applies the activation to one value.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Self::Identity => x,
            Self::Tanh => x.tanh(),
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Self::Relu => x.max(0.0),
        }
    }
}

/// One Dense module with its weights.
#[derive(Debug, Clone)]
pub struct Dense {
    pub in_features: usize,
    pub out_features: usize,
    pub activation: Activation,
    /// `[out_features][in_features]`, row-major.
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl Dense {
    /// Loads a Dense module folder: `config.json` and `model.safetensors` (`linear.weight`,
    /// `linear.bias`). A folder with only `pytorch_model.bin` is refused by the caller.
    pub fn load(config_path: &Path, weights_path: &Path) -> Result<Dense> {
        Self::load_in(&FileStore::disk(), config_path, weights_path)
    }

    /// `load` on the files of `store`.
    pub fn load_in(store: &FileStore, config_path: &Path, weights_path: &Path) -> Result<Dense> {
        let v = super::read_json(store, config_path)?;
        let err = |m: String| layout_err(config_path, m);
        let dim = |key: &str| -> Result<usize> {
            v.get(key)
                .and_then(Value::as_u64)
                .filter(|&d| d > 0)
                .map(|d| d as usize)
                .ok_or_else(|| err(format!("{key} is missing or not a positive integer")))
        };
        let in_features = dim("in_features")?;
        let out_features = dim("out_features")?;
        let has_bias = match v.get("bias") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => return Err(err(format!("bias must be true or false, got {other}"))),
        };
        if v.get("use_residual").and_then(Value::as_bool) == Some(true) {
            return Err(err(
                "Dense modules with use_residual are not supported".into()
            ));
        }
        let activation = match v.get("activation_function") {
            None | Some(Value::Null) => Activation::Tanh,
            Some(Value::String(s)) => Activation::from_torch_path(s).ok_or_else(|| {
                err(format!(
                    "unsupported activation_function '{s}' (supported: Identity, Tanh, Sigmoid, ReLU)"
                ))
            })?,
            Some(other) => return Err(err(format!("activation_function is not a string: {other}"))),
        };
        let ck = Checkpoint::open_file_in(store, weights_path)?;
        let werr = |m: String| layout_err(weights_path, m);
        let (weight, shape) = ck.read_f32("linear.weight")?;
        if shape != [out_features, in_features] {
            return Err(werr(format!(
                "linear.weight has shape {shape:?}, but the Dense config says [{out_features}, {in_features}] (out_features, in_features)"
            )));
        }
        let bias = if has_bias {
            let (b, shape) = ck.read_f32("linear.bias")?;
            if shape != [out_features] {
                return Err(werr(format!(
                    "linear.bias has shape {shape:?}, expected [{out_features}]"
                )));
            }
            Some(b)
        } else {
            None
        };
        Ok(Dense {
            in_features,
            out_features,
            activation,
            weight,
            bias,
        })
    }

    /// `activation(x W^T + b)` for one vector of `in_features` values.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        debug_assert_eq!(x.len(), self.in_features);
        self.weight
            .chunks_exact(self.in_features)
            .enumerate()
            .map(|(o, row)| {
                let dot: f64 = row.iter().zip(x).map(|(&w, &v)| w as f64 * v as f64).sum();
                let b = self.bias.as_ref().map_or(0.0, |b| b[o] as f64);
                self.activation.apply(dot + b) as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_paths() {
        for (p, a) in [
            ("torch.nn.modules.activation.Tanh", Activation::Tanh),
            ("torch.nn.modules.linear.Identity", Activation::Identity),
            ("torch.nn.Sigmoid", Activation::Sigmoid),
            ("ReLU", Activation::Relu),
        ] {
            assert_eq!(Activation::from_torch_path(p), Some(a), "{p}");
        }
        for p in ["torch.nn.modules.activation.GELU", "my.module.Tanh", ""] {
            assert_eq!(Activation::from_torch_path(p), None, "{p}");
        }
    }

    #[test]
    fn forward_is_a_linear_layer_then_the_activation() {
        let d = Dense {
            in_features: 2,
            out_features: 3,
            activation: Activation::Relu,
            weight: vec![1.0, 2.0, -1.0, 0.0, 0.5, 0.5],
            bias: Some(vec![0.0, 0.5, -10.0]),
        };
        assert_eq!(d.forward(&[3.0, -1.0]), [1.0, 0.0, 0.0]);
        let t = Dense {
            activation: Activation::Tanh,
            bias: None,
            ..d
        };
        assert_eq!(t.forward(&[1.0, 0.0])[0], 1f64.tanh() as f32);
    }
}
