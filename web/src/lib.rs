//! wgbert in the browser: the library, with its own kernels and plans, built for wasm32 on
//! the page's WebGPU adapter and exposed to JavaScript by wasm-bindgen as [`Model`].
//! Everything is asynchronous (the device, the load, every task; readback by `map_async`).
//! Results are the `wgbert` command line's JSON objects, or `Float32Array`s for vectors, and
//! every error is a JS `Error` with the library's message. The JS package (`js/wgbert.js`)
//! wraps `Model` in its `Encoder` class: fetching a folder URL, one call at a time, progress.

mod bridge;
mod options;

use std::rc::Rc;

use js_sys::{Array, Float32Array, Function, Object, Promise, Reflect, Uint32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use wgbert::encoder::{Encoder, LoadOptions, RerankOptions};
use wgbert::runtime::{Gpu, GpuOptions};
use wgbert::sentence::ModelKind;

use bridge::{JsProgress, js_error};
use options::{EmbedArgs, LoadArgs, RerankArgs};

/// Texts per chunk of a long call: progress is told after each.
const CHUNK: usize = 64;

/// Panics (bugs) reach the page's console with their message, not as a bare trap.
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&JsValue::from_str(&format!("wgbert panicked: {info}")));
    }));
}

/// A model loaded on the page's WebGPU device.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<Inner>,
}

struct Inner {
    enc: Encoder,
    name: String,
}

/// Runs a task on the model and settles a promise with its value (or its error).
fn task<F>(inner: &Rc<Inner>, f: impl FnOnce(Rc<Inner>) -> F + 'static) -> Promise
where
    F: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
{
    future_to_promise(f(inner.clone()))
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a field of a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn json(value: &impl serde::Serialize) -> Result<JsValue, JsValue> {
    serde_json::to_string(value)
        .map(|s| JsValue::from_str(&s))
        .map_err(js_error)
}

#[wasm_bindgen]
impl Model {
    /// Creates a device on the page's WebGPU adapter (with the adapter's own limits and the
    /// features it offers) and loads the model `name` (a folder URL, or a label for files
    /// held in memory), whose files `fetch_file(file)` returns: a promise of a `Uint8Array`
    /// or `ArrayBuffer`, or of `null` when the model has no such file. `options` is JSON:
    /// `{"dtype": "f32"|"f16", "max_tokens": n, "truncate": bool}`. `progress(event, what,
    /// n, item)` hears of the weight upload.
    pub async fn load(
        name: String,
        fetch_file: Function,
        options: String,
        progress: Option<Function>,
    ) -> Result<Model, JsValue> {
        let args = LoadArgs::parse(&options).map_err(js_error)?;
        let opts = LoadOptions {
            dtype: args.dtype().map_err(js_error)?,
            truncate: args.truncate.unwrap_or(false),
            max_batch_tokens: args.max_tokens,
            progress: progress.map(|f| std::sync::Arc::new(JsProgress(f)) as _),
            ..Default::default()
        };
        let gpu = Gpu::new_async(&GpuOptions::default())
            .await
            .map_err(js_error)?;
        let get = async |file: &str| bridge::fetch_file(&fetch_file, &name, file).await;
        let enc = Encoder::load_fetched(gpu, &name, get, &opts)
            .await
            .map_err(js_error)?;
        Ok(Model {
            inner: Rc::new(Inner { enc, name }),
        })
    }

    /// What was loaded where, as JSON: the model, its kind, precision and sizes, prompts and
    /// labels, and the adapter with the features and limits the kernels were chosen for.
    pub fn info(&self) -> Result<String, JsValue> {
        let enc = &self.inner.enc;
        let gpu = enc.gpu();
        let (info, caps) = (gpu.info(), gpu.caps());
        let sc = enc.sentence_config();
        let hidden = enc.config().hidden_size;
        let value = serde_json::json!({
            "model": self.inner.name,
            "kind": sc.kind().name(),
            "dtype": enc.dtype().wgsl(),
            "hidden_size": hidden,
            "dimensions": sc.output_dim(hidden),
            "max_length": enc.tokenizer().ok().and_then(|t| t.max_len()),
            "capacity": enc.capacity(),
            "prompts": sc.prompts,
            "default_prompt_name": sc.default_prompt_name,
            "labels": enc.label_names(),
            "heads": { "mlm": enc.heads().mlm, "classifier": enc.heads().classifier },
            "adapter": {
                "name": info.name,
                "backend": format!("{:?}", info.backend),
                "device_type": format!("{:?}", info.device_type),
                "driver": info.driver,
                "description": info.driver_info,
                "capabilities": caps,
            },
            "weight_bytes": enc.weight_bytes(),
        });
        Ok(value.to_string())
    }

    /// Embeds texts (`options` JSON: `normalize`, `prompt`, `prompt_name`, `dimensions`,
    /// `pooling` "cls"|"mean"|"none", `multi_vector` "query"|"document"): an array of
    /// `{n_tokens, vectors: Float32Array[]}` (one vector, or one per token), or for a sparse
    /// model `{n_tokens, indices: Uint32Array, values: Float32Array}`. `progress` hears of
    /// each chunk of texts.
    pub fn embed(
        &self,
        texts: Vec<String>,
        options: String,
        progress: Option<Function>,
    ) -> Promise {
        task(&self.inner, async move |inner| {
            let args = EmbedArgs::parse(&options).map_err(js_error)?;
            let enc = &inner.enc;
            let out = Array::new();
            let observer = progress.map(JsProgress);
            if let Some(p) = &observer {
                wgbert::progress::Progress::start(p, "embedding", texts.len() as u64);
            }
            for (c, chunk) in texts.chunks(CHUNK).enumerate() {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let first = c * CHUNK;
                let items = embed_chunk(enc, &refs, &args)
                    .await
                    .map_err(|e| js_error(e.reindexed(first)))?;
                for item in items {
                    out.push(&item);
                }
                if let Some(p) = &observer {
                    wgbert::progress::Progress::advance(p, chunk.len() as u64, "");
                }
            }
            if let Some(p) = &observer {
                wgbert::progress::Progress::finish(p);
            }
            Ok(out.into())
        })
    }

    /// Fills each `[MASK]` of each text: JSON, per text, the list of
    /// `{position, candidates: [{token_id, token, score, sequence}]}`.
    pub fn fill_mask(&self, texts: Vec<String>, top_k: usize) -> Promise {
        task(&self.inner, async move |inner| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let masks = inner.enc.fill_mask_async(&refs, top_k).await;
            json(&masks.map_err(js_error)?)
        })
    }

    /// Classifies texts: JSON, per text, `{label, score, logits, scores}`.
    pub fn classify(&self, texts: Vec<String>) -> Promise {
        task(&self.inner, async move |inner| {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            json(&inner.enc.classify_async(&refs).await.map_err(js_error)?)
        })
    }

    /// Ranks documents against a query with whatever the model is (cross-encoder,
    /// bi-encoder, ColBERT, sparse; `options` JSON: `raw_scores`, `top_n`): JSON
    /// `[{index, score}]`, best first.
    pub fn rerank(&self, query: String, docs: Vec<String>, options: String) -> Promise {
        task(&self.inner, async move |inner| {
            let args = RerankArgs::parse(&options).map_err(js_error)?;
            let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
            let opts = RerankOptions {
                raw_scores: args.raw_scores.unwrap_or(false),
                top_n: args.top_n,
            };
            let ranked = inner.enc.rerank_async(&query, &refs, &opts).await;
            json(&ranked.map_err(js_error)?)
        })
    }
}

/// Gives the WGSL of every kernel of the library that this page's adapter can run (the
/// portable ones: wgpu gives a browser no subgroups or cooperative matrices; the f16 builds
/// where it has shader-f16) to the browser's shader compiler (`createShaderModule`: Tint in
/// Chromium, naga in Firefox) on a device of its own, and returns
/// `{"checked": n, "failures": [{kernel, message}]}` as JSON: every variant, not only those a
/// test model's plans use. (Pipelines are left out: a CPU adapter takes seconds for each.)
#[wasm_bindgen(js_name = checkKernels)]
pub async fn check_kernels() -> Result<String, JsValue> {
    let gpu = Gpu::new_async(&GpuOptions::default())
        .await
        .map_err(js_error)?;
    let mut failures = Vec::new();
    let mut checked = 0usize;
    for kernel in wgbert::ops::all_kernels() {
        let name = kernel.name();
        let source = kernel.wgsl().map_err(js_error)?;
        // What the code uses, not what its comments mention.
        let code: Vec<&str> = source
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect();
        let code = code.join("\n");
        let needs_f16 = code.contains("enable f16");
        let native_only = code.contains("subgroup") || code.contains("coop_mat");
        if native_only || (needs_f16 && !gpu.caps().f16) {
            continue;
        }
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(&name),
            source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
        };
        let created = gpu.guarded(&format!("compiling kernel {name}"), || {
            gpu.device().create_shader_module(desc)
        });
        let settled = gpu.settle().await;
        checked += 1;
        if let Err(e) = created.map(drop).and(settled) {
            failures.push(serde_json::json!({ "kernel": name, "message": e.to_string() }));
        }
    }
    let report = serde_json::json!({ "checked": checked, "failures": failures });
    Ok(report.to_string())
}

/// One chunk of `embed`, as the model's kind and the options ask.
async fn embed_chunk(
    enc: &Encoder,
    texts: &[&str],
    args: &EmbedArgs,
) -> wgbert::Result<Vec<JsValue>> {
    if enc.sentence_config().kind() == ModelKind::Sparse && args.multi_vector.is_none() {
        let opts = args.sparse_options()?;
        let vectors = enc.embed_sparse_async(texts, &opts).await?;
        return Ok(vectors
            .iter()
            .map(|v| {
                let obj = Object::new();
                set(&obj, "n_tokens", &JsValue::from_f64(v.n_tokens as f64));
                set(&obj, "indices", &Uint32Array::from(&v.indices[..]).into());
                set(&obj, "values", &Float32Array::from(&v.values[..]).into());
                obj.into()
            })
            .collect());
    }
    let embedded = match args.multi_vector()? {
        Some(query) => enc.embed_multi_async(texts, query).await?,
        None => enc.embed_with_async(texts, &args.embed_options()?).await?,
    };
    Ok(embedded
        .iter()
        .map(|e| {
            let obj = Object::new();
            set(&obj, "n_tokens", &JsValue::from_f64(e.n_tokens as f64));
            let vectors: Array = e
                .vectors
                .iter()
                .map(|v| JsValue::from(Float32Array::from(&v[..])))
                .collect();
            set(&obj, "vectors", &vectors.into());
            obj.into()
        })
        .collect())
}
