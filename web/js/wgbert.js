// wgbert in the browser: ModernBERT on the page's WebGPU adapter, with the wgbert library's
// own WGSL kernels (compiled to WebAssembly). The `Encoder` class mirrors the Python
// package: load a model from a folder URL or from files, then encode, fillMask, rank,
// classify. Calls on one encoder run one at a time, in the order they were made.

import init, { Model } from "./pkg/wgbert_web.js";

let ready = null;

/** Loads and instantiates the WebAssembly module once (default: `pkg/wgbert_web_bg.wasm`
 * beside this file; pass a URL, `Response` or `WebAssembly.Module` to place it elsewhere). */
export function initWgbert(wasm) {
  ready ??= init(wasm === undefined ? undefined : { module_or_path: wasm });
  return ready;
}

/** What the browser lacks for wgbert, or null. */
export function missingWebGpu() {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    return "this browser offers no WebGPU (navigator.gpu is missing; Chrome/Edge 113+, Firefox with dom.webgpu.enabled, Safari 26+)";
  }
  return null;
}

function bytesOf(value) {
  if (value instanceof Uint8Array) return Promise.resolve(value);
  if (value instanceof ArrayBuffer) return Promise.resolve(new Uint8Array(value));
  if (ArrayBuffer.isView(value)) {
    return Promise.resolve(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
  }
  if (typeof Blob !== "undefined" && value instanceof Blob) {
    return value.arrayBuffer().then((b) => new Uint8Array(b));
  }
  if (typeof value === "string") return Promise.resolve(new TextEncoder().encode(value));
  throw new TypeError("a model file must be a Uint8Array, ArrayBuffer, Blob or string");
}

/** The model's name and a function from a file name (`config.json`, `1_Pooling/config.json`)
 * to its bytes, or null when the model has no such file. */
function fileSource(source, onProgress) {
  if (typeof source === "string" || source instanceof URL) {
    const base = new URL(source, globalThis.location?.href);
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    const get = async (file) => {
      const url = new URL(file, base);
      const response = await fetch(url);
      if (response.status === 404) return null;
      if (!response.ok) throw new Error(`${url}: HTTP ${response.status} ${response.statusText}`);
      const total = Number(response.headers.get("content-length")) || 0;
      if (!onProgress || !response.body) return new Uint8Array(await response.arrayBuffer());
      const reader = response.body.getReader();
      const parts = [];
      let done = 0;
      onProgress({ stage: "download", file, done, total });
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        parts.push(value);
        done += value.length;
        onProgress({ stage: "download", file, done, total });
      }
      const out = new Uint8Array(done);
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    };
    return { name: base.href, get };
  }
  // Files in memory: a Map or object of name -> bytes, or File objects (a folder picked
  // with <input webkitdirectory>: names relative to the folder).
  const entries = new Map();
  if (source instanceof Map) {
    for (const [k, v] of source) entries.set(k, v);
  } else if (typeof FileList !== "undefined" && source instanceof FileList || Array.isArray(source)) {
    for (const f of source) {
      const rel = f.webkitRelativePath || f.name;
      entries.set(rel.includes("/") ? rel.slice(rel.indexOf("/") + 1) : rel, f);
    }
  } else if (source && typeof source === "object") {
    for (const [k, v] of Object.entries(source)) entries.set(k, v);
  } else {
    throw new TypeError("a model is a folder URL, or its files (a Map, an object, a FileList)");
  }
  const get = (file) => (entries.has(file) ? bytesOf(entries.get(file)) : Promise.resolve(null));
  return { name: "model", get };
}

/** The library's progress events as `{stage, what, done, total, item}`. */
function progressOf(onProgress) {
  if (!onProgress) return undefined;
  let what = "";
  let total = 0;
  let done = 0;
  return (event, name, n, item) => {
    if (event === "start") {
      what = name;
      total = n;
      done = 0;
    } else if (event === "advance") {
      done += n;
    } else {
      done = total;
    }
    onProgress({ stage: what, done, total, item });
  };
}

/** A model on the page's WebGPU device. */
export class Encoder {
  #model;
  #queue = Promise.resolve();
  #info = null;
  #adapter;

  constructor(model, adapter = null) {
    this.#model = model;
    this.#adapter = adapter;
  }

  /** Loads a model: a folder URL (holding config.json, model.safetensors or its shards,
   * tokenizer.json, and a sentence-transformers layout where there is one), or its files.
   * Options: `dtype` ("f32" | "f16"; default f16 where the adapter has it), `maxTokens`,
   * `truncate`, `onProgress({stage, done, total, file?, item?})`, `wasm` (see initWgbert). */
  static async load(source, options = {}) {
    const missing = missingWebGpu();
    if (missing) throw new Error(missing);
    await initWgbert(options.wasm);
    const { name, get } = fileSource(source, options.onProgress);
    const opts = JSON.stringify({
      dtype: options.dtype ?? undefined,
      max_tokens: options.maxTokens ?? undefined,
      truncate: options.truncate ?? undefined,
    });
    const model = await Model.load(options.name ?? name, get, opts, progressOf(options.onProgress));
    // What the browser says of its adapter (WebGPU gives wgpu only its description).
    const a = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    const adapter = a && {
      vendor: a.info?.vendor ?? "",
      architecture: a.info?.architecture ?? "",
      device: a.info?.device ?? "",
      description: a.info?.description ?? "",
      features: [...a.features].sort(),
    };
    return new Encoder(model, adapter);
  }

  #run(call) {
    if (!this.#model) return Promise.reject(new Error("this encoder was disposed"));
    const result = this.#queue.then(() => call(this.#model));
    this.#queue = result.catch(() => {});
    return result;
  }

  /** What was loaded where: model, kind, dtype, dimensions, prompts, labels, adapter (with
   * `adapter.browser`: the browser's own description of it and its features). */
  info() {
    if (!this.#info) {
      this.#info = JSON.parse(this.#model.info());
      this.#info.adapter.browser = this.#adapter;
    }
    return this.#info;
  }

  /** Embeddings as sentence-transformers computes them: a Float32Array per text (one for
   * a single string). Options: `normalize`, `prompt`, `promptName`, `dimensions`,
   * `pooling` ("cls" | "mean" | "none": every token's state, an array of Float32Array per
   * text), `multiVector` ("query" | "document", ColBERT), `topKTerms` (sparse models give
   * `{indices, values}`), `onProgress`. */
  async encode(texts, options = {}) {
    const one = typeof texts === "string";
    const list = one ? [texts] : Array.from(texts);
    const opts = JSON.stringify({
      normalize: options.normalize ?? undefined,
      prompt: options.prompt ?? undefined,
      prompt_name: options.promptName ?? undefined,
      dimensions: options.dimensions ?? undefined,
      pooling: options.pooling ?? undefined,
      multi_vector: options.multiVector ?? undefined,
      top_k_terms: options.topKTerms ?? undefined,
    });
    const raw = await this.#run((m) => m.embed(list, opts, progressOf(options.onProgress)));
    const perToken = options.pooling === "none" || options.multiVector !== undefined;
    const out = raw.map((e) => {
      if (e.indices) return { indices: e.indices, values: e.values };
      return perToken ? e.vectors : e.vectors[0];
    });
    return one ? out[0] : out;
  }

  /** The raw results of `encode`: `{n_tokens, vectors}` (or `{n_tokens, indices, values}`)
   * per text, with the library's option names. */
  embedRaw(texts, options = {}, onProgress = undefined) {
    return this.#run((m) => m.embed(Array.from(texts), JSON.stringify(options), progressOf(onProgress)));
  }

  /** Fills each [MASK]: per text, `[{position, candidates: [{token_id, token, score,
   * sequence}]}]` (for one string, its list). */
  async fillMask(texts, { topK = 5 } = {}) {
    const one = typeof texts === "string";
    const list = one ? [texts] : Array.from(texts);
    const out = JSON.parse(await this.#run((m) => m.fill_mask(list, topK)));
    return one ? out[0] : out;
  }

  /** Sequence classification: per text `{label, score, logits, scores}`. */
  async classify(texts) {
    const one = typeof texts === "string";
    const list = one ? [texts] : Array.from(texts);
    const out = JSON.parse(await this.#run((m) => m.classify(list)));
    return one ? out[0] : out;
  }

  /** Ranks documents against a query, best first, as CrossEncoder.rank: `[{corpus_id,
   * score, text?}]`. Cross-encoders score pairs; bi-encoders, ColBERT and sparse models
   * compare vectors. Options: `topK`, `rawScores`, `returnDocuments`. */
  async rank(query, documents, { topK, rawScores, returnDocuments = false } = {}) {
    const docs = Array.from(documents);
    const opts = JSON.stringify({ raw_scores: rawScores ?? undefined, top_n: topK ?? undefined });
    const ranked = JSON.parse(await this.#run((m) => m.rerank(query, docs, opts)));
    return ranked.map((r) =>
      returnDocuments ? { corpus_id: r.index, score: r.score, text: docs[r.index] } : { corpus_id: r.index, score: r.score },
    );
  }

  /** Frees the model's device memory once the calls made so far are done. */
  async dispose() {
    const model = this.#model;
    await this.#queue;
    this.#model = null;
    model?.free();
  }
}
