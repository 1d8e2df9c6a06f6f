//! Reading `modules.json` and the files it points at. Module types are matched by class name
//! under `sentence_transformers.` or `pylate.`; anything else is an error naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{
    ColbertConfig, Dense, ModelKind, PoolingConfig, SentenceConfig, Similarity, SparseConfig,
    TokenPooling, layout_err, read_json,
};
use crate::Result;
use crate::model::config::ModelConfig;
use crate::sentence::Activation;

const ST_CONFIG: &str = "config_sentence_transformers.json";
const BERT_CONFIG: &str = "sentence_bert_config.json";
/// Where sentence-transformers 6 keeps the Transformer's `max_seq_length`
/// (`model_max_length`) when sentence_bert_config.json has none.
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// Files a module folder may hold.
const MODULE_FILES: [&str; 3] = ["config.json", "model.safetensors", "pytorch_model.bin"];

/// One entry of modules.json.
struct Module {
    idx: usize,
    class: String,
    path: String,
}

impl Module {
    /// The class name when the type is a sentence-transformers or PyLate module.
    fn kind(&self) -> Option<&str> {
        let known =
            self.class.starts_with("sentence_transformers.") || self.class.starts_with("pylate.");
        known.then(|| self.class.rsplit('.').next().unwrap_or(""))
    }
    fn file(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.path)
        }
    }
}

fn parse_modules(path: &Path) -> Result<Vec<Module>> {
    let v = read_json(path)?;
    let list = v
        .as_array()
        .ok_or_else(|| layout_err(path, "modules.json is not a list of modules"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| {
            let field = |key: &str| -> Result<String> {
                m.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| layout_err(path, format!("module {i} has no \"{key}\" string")))
            };
            let idx = m
                .get("idx")
                .and_then(Value::as_u64)
                .map_or(i, |n| n as usize);
            let module_path = field("path")?;
            // Folder names come from anyone on the hub: keep them inside the model folder.
            let escapes = module_path.contains('\\')
                || Path::new(&module_path)
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_)));
            if escapes {
                return Err(layout_err(
                    path,
                    format!("module {i} path {module_path:?} leaves the model folder"),
                ));
            }
            Ok(Module {
                idx,
                class: field("type")?,
                path: module_path,
            })
        })
        .collect()
}

/// The files (relative to the model root) that the layout of `modules.json` may use.
pub fn layout_file_names(modules_json: &Path) -> Result<Vec<String>> {
    let mut names = vec![
        ST_CONFIG.to_string(),
        BERT_CONFIG.to_string(),
        TOKENIZER_CONFIG.to_string(),
    ];
    for m in parse_modules(modules_json)? {
        if !m.path.is_empty() {
            names.extend(MODULE_FILES.iter().map(|f| m.file(f)));
            names.push(m.file(BERT_CONFIG));
        }
    }
    Ok(names)
}

/// Reads the whole layout from the files found (`files`: relative name to local path).
pub(super) fn read(
    files: &BTreeMap<String, PathBuf>,
    config_json: &Path,
    config: &ModelConfig,
) -> Result<SentenceConfig> {
    let modules_path = &files[super::MODULES];
    let mut modules = parse_modules(modules_path)?;
    modules.sort_by_key(|m| m.idx);
    let mut sc = SentenceConfig::default();
    let mut pylate = false;
    // A masked-LM transformer (SparseEncoder's MLMTransformer, or a Transformer whose task
    // is fill-mask): its outputs are vocabulary logits, not hidden states.
    let mut mlm = false;
    // The Transformer's sentence_bert_config.json and a MultiVectorMask's config, for the
    // native multi-vector layout.
    let mut transformer_cfg: Option<(PathBuf, Value)> = None;
    let mut mask_cfg: Option<(PathBuf, Value)> = None;
    for m in &modules {
        let what = format!("module {} ({})", m.idx, m.class);
        let Some(kind) = m.kind() else {
            return Err(layout_err(
                modules_path,
                format!("unknown module type '{}'", m.class),
            ));
        };
        pylate |= m.class.starts_with("pylate.");
        let need = |name: &str| -> Result<&PathBuf> {
            files.get(&m.file(name)).ok_or_else(|| {
                layout_err(
                    modules_path,
                    format!(
                        "{what}: the module folder '{}' has no {name} (missing folder?)",
                        m.path
                    ),
                )
            })
        };
        if sc.token_pooling.is_some() && kind != "Normalize" {
            return Err(layout_err(
                modules_path,
                format!("{what} comes after the token pooling module; only Normalize may"),
            ));
        }
        match kind {
            "Transformer" | "MLMTransformer" => {
                if !m.path.is_empty() {
                    return Err(layout_err(
                        modules_path,
                        format!(
                            "{what}: a Transformer in a subfolder ('{}') is not supported; the backbone must be at the model root",
                            m.path
                        ),
                    ));
                }
                mlm |= kind == "MLMTransformer";
                if let Some(p) = files.get(BERT_CONFIG) {
                    let v = read_json(p)?;
                    sc.max_seq_length = v
                        .get("max_seq_length")
                        .and_then(Value::as_u64)
                        .map(|n| n as usize);
                    mlm |= v.get("transformer_task").and_then(Value::as_str) == Some("fill-mask");
                    transformer_cfg = Some((p.clone(), v));
                }
                if sc.max_seq_length.is_none() {
                    sc.max_seq_length = tokenizer_max_length(files)?;
                }
            }
            "SpladePooling" => {
                let p = need("config.json")?;
                let sparse = SparseConfig::from_json(&read_json(p)?, p)?;
                if !mlm {
                    return Err(layout_err(
                        modules_path,
                        format!(
                            "{what}: SpladePooling needs a masked-LM transformer before it (MLMTransformer, or a Transformer with transformer_task \"fill-mask\")"
                        ),
                    ));
                }
                if let Some(d) = sparse.dimension {
                    if d != config.vocab_size {
                        return Err(layout_err(
                            p,
                            format!(
                                "the embedding dimension {d} differs from the model's vocab_size {}",
                                config.vocab_size
                            ),
                        ));
                    }
                }
                sc.sparse = Some(sparse);
            }
            "Pooling" => {
                let p = need("config.json")?;
                let pooling = PoolingConfig::from_json(&read_json(p)?, p)?;
                if let Some(d) = pooling.dimension {
                    if d != config.hidden_size {
                        return Err(layout_err(
                            p,
                            format!(
                                "word_embedding_dimension {d} differs from the model's hidden_size {}",
                                config.hidden_size
                            ),
                        ));
                    }
                }
                sc.pooling = Some(pooling);
            }
            "Dense" => {
                let cfg = need("config.json")?;
                let Some(weights) = files.get(&m.file("model.safetensors")) else {
                    let message = if files.contains_key(&m.file("pytorch_model.bin")) {
                        format!(
                            "{what}: only pytorch_model.bin in '{}'; convert it to model.safetensors",
                            m.path
                        )
                    } else {
                        format!(
                            "{what}: no model.safetensors in '{}' (missing folder?)",
                            m.path
                        )
                    };
                    return Err(layout_err(modules_path, message));
                };
                let dense = Dense::load(cfg, weights)?;
                let width = match (sc.dense.last(), &sc.pooling) {
                    (Some(prev), _) => prev.out_features,
                    (None, Some(p)) => p.output_dim(config.hidden_size),
                    (None, None) => config.hidden_size,
                };
                if dense.in_features != width {
                    return Err(layout_err(
                        cfg,
                        format!(
                            "in_features {} does not match the {width} values coming into this Dense module",
                            dense.in_features
                        ),
                    ));
                }
                sc.dense.push(dense);
            }
            "Normalize" => sc.normalize = true,
            "MultiVectorMask" => {
                let p = need("config.json")?;
                mask_cfg = Some((p.clone(), read_json(p)?));
            }
            "HierarchicalTokenPooling" => {
                if m.path.is_empty() {
                    return Err(layout_err(
                        modules_path,
                        format!("{what}: its settings need a folder of their own (no path given)"),
                    ));
                }
                let p = need("config.json")?;
                let mut pooling = TokenPooling::from_json(&read_json(p)?, p)?;
                pooling.normalized_input = sc.normalize;
                sc.token_pooling = Some(pooling);
            }
            pooling if pooling.ends_with("TokenPooling") => {
                return Err(layout_err(
                    modules_path,
                    format!(
                        "{what}: token pooling module '{pooling}' is not supported (HierarchicalTokenPooling is)"
                    ),
                ));
            }
            other => {
                return Err(layout_err(
                    modules_path,
                    format!("{what}: unsupported module type '{other}'"),
                ));
            }
        }
    }
    let st = match files.get(ST_CONFIG) {
        Some(p) => Some((p, read_json(p)?)),
        None => None,
    };
    let model_type = st.as_ref().and_then(|(_, v)| v.get("model_type")?.as_str());
    if let Some((p, v)) = &st {
        read_prompts(&mut sc, v, p)?;
        if pylate || model_type == Some("ColBERT") || v.get("query_prefix").is_some() {
            sc.colbert = Some(ColbertConfig::from_json(v, p)?);
        }
    }
    if sc.colbert.is_none() && (mask_cfg.is_some() || model_type == Some("MultiVectorEncoder")) {
        let t = transformer_cfg.as_ref().map(|(p, v)| (p.as_path(), v));
        let m = mask_cfg.as_ref().map(|(p, v)| (p.as_path(), v));
        sc.colbert = Some(ColbertConfig::native(t, m, sc.normalize)?);
    }
    let cross = match model_type {
        Some("CrossEncoder") | None => cross_encoder_activation(
            config_json,
            st.as_ref().map(|(p, v)| (p.as_path(), v)),
            config,
        )?,
        _ => None,
    };
    if sc.token_pooling.is_some() && sc.colbert.is_none() {
        return Err(layout_err(
            modules_path,
            "token pooling needs a multi-vector (MultiVectorEncoder) model",
        ));
    }
    sc.kind = if sc.sparse.is_some() {
        if sc.pooling.is_some() || !sc.dense.is_empty() || sc.colbert.is_some() {
            return Err(layout_err(
                modules_path,
                "a SpladePooling model with Pooling, Dense or ColBERT settings is not supported",
            ));
        }
        Some(ModelKind::Sparse)
    } else if mlm {
        return Err(layout_err(
            modules_path,
            "a masked-LM transformer without SpladePooling is not supported",
        ));
    } else if sc.colbert.is_some() {
        Some(ModelKind::Colbert)
    } else if sc.pooling.is_some() {
        Some(ModelKind::Embedder)
    } else if cross.is_some() {
        sc.cross_activation = cross;
        Some(ModelKind::CrossEncoder)
    } else {
        // Per-token states out of a sentence-transformers model would be silently wrong.
        return Err(layout_err(
            &files[super::MODULES],
            "the layout has no Pooling module and is no cross-encoder or ColBERT model",
        ));
    };
    Ok(sc)
}

/// `model_max_length` of tokenizer_config.json, unless it is transformers' stand-in for
/// "no limit" (a number past any real length).
fn tokenizer_max_length(files: &BTreeMap<String, PathBuf>) -> Result<Option<usize>> {
    let Some(p) = files.get(TOKENIZER_CONFIG) else {
        return Ok(None);
    };
    let v = read_json(p)?;
    Ok(v.get("model_max_length")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0 && n < 1 << 32)
        .map(|n| n as usize))
}

fn read_prompts(sc: &mut SentenceConfig, v: &Value, p: &Path) -> Result<()> {
    if let Some(prompts) = v.get("prompts").filter(|x| !x.is_null()) {
        let obj = prompts
            .as_object()
            .ok_or_else(|| layout_err(p, "\"prompts\" is not an object of name: text"))?;
        for (name, text) in obj {
            let text = text
                .as_str()
                .ok_or_else(|| layout_err(p, format!("prompt '{name}' is not a string")))?;
            sc.prompts.insert(name.clone(), text.to_string());
        }
    }
    if let Some(name) = v.get("default_prompt_name").and_then(Value::as_str) {
        if !sc.prompts.contains_key(name) {
            return Err(layout_err(
                p,
                format!("default_prompt_name '{name}' is not among the prompts"),
            ));
        }
        sc.default_prompt_name = Some(name.to_string());
    }
    if let Some(name) = v.get("similarity_fn_name").and_then(Value::as_str) {
        sc.similarity = Some(
            Similarity::from_name(name)
                .ok_or_else(|| layout_err(p, format!("unknown similarity_fn_name '{name}'")))?,
        );
    }
    Ok(())
}

/// A cross-encoder's activation: `activation_fn` of config_sentence_transformers.json
/// (sentence-transformers 6), config.json `sentence_transformers.activation_fn` (4 and 5) or
/// `sbert_ce_default_activation_function` (older); a one-label classifier without any gets
/// sigmoid, as `CrossEncoder` does. `None`: not a one-label sequence classifier.
pub(super) fn cross_encoder_activation(
    path: &Path,
    st: Option<(&Path, &Value)>,
    config: &ModelConfig,
) -> Result<Option<Activation>> {
    let is_classifier = config
        .architectures
        .iter()
        .any(|a| a.ends_with("ForSequenceClassification"));
    if !is_classifier || config.num_labels() != 1 {
        return Ok(None);
    }
    let v = read_json(path)?;
    let in_st = st.and_then(|(p, v)| Some((p, v.get("activation_fn").filter(|x| !x.is_null())?)));
    let in_config = v
        .get("sentence_transformers")
        .and_then(|s| s.get("activation_fn"))
        .or_else(|| v.get("sbert_ce_default_activation_function"))
        .filter(|x| !x.is_null())
        .map(|x| (path, x));
    let (path, named) = match in_st.or(in_config) {
        Some((p, x)) => (p, Some(x)),
        None => (path, None),
    };
    match named {
        None => Ok(Some(Activation::Sigmoid)),
        Some(Value::String(s)) => Activation::from_torch_path(s).map(Some).ok_or_else(|| {
            layout_err(path, format!("unsupported cross-encoder activation '{s}' (supported: Identity, Tanh, Sigmoid, ReLU)"))
        }),
        Some(other) => Err(layout_err(path, format!("the cross-encoder activation is not a string: {other}"))),
    }
}
