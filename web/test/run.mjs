// The browser tests (scripts/test_web.sh): the harness page of web/dist in headless
// Chromium (SwiftShader, f32) and Firefox ESR (lavapipe, f16 and f32), against the outputs
// transformers and sentence-transformers computed for the fixtures in tests/fixtures:
//   - hidden states of a ModernBertForMaskedLM, f32 within 1e-4, f16 by cosine >= 0.999,
//     through task=embed&pooling=none: single-file, sharded and bf16 checkpoints, and a
//     1337-token input through windowed attention;
//   - fill-mask top-5 ids (ties within 1e-4 of the reference's logits may swap) and their
//     probabilities within 1e-4 relative;
//   - a sentence-transformers model's embeddings (Pooling, Dense, Normalize), f32 within
//     1e-4, f16 by cosine >= 0.999;
//   - a cross-encoder's scores (rerank), f32 within 1e-4 and in the reference's order, f16
//     within 5e-3;
//   - a sequence classifier's logits within 1e-4;
//   - with ModernBERT's tokenizer (WGBERT_TOKENIZER) and the `wgbert` binary (WGBERT_CLI):
//     the harness's JSON objects for embed and fill-mask equal the CLI's JSONL for the same
//     model and texts (keys, tokens and strings; numbers within 1e-4);
//   - the precision chosen: f32 where the adapter has no shader-f16, f16 where it has; and
//     errors: a missing model folder is an error naming config.json, f16 asked of an
//     adapter without it names shader-f16;
//   - every kernel the adapter can run through the browser's WGSL compiler (kernels.html);
//   - the demo page: a model loaded from its URL, the adapter shown, search over the
//     passages, an error shown where fill-mask cannot run.
// Usage: node web/test/run.mjs DIST WORK BROWSER... (BROWSER: chromium, firefox). Prints a
// line per case; exit 1 when any fails.

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { launch, runPage } from "./browsers.mjs";
import { serve } from "./serve.mjs";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FIXTURES = path.join(REPO, "tests/fixtures");
const PAGE_TIMEOUT_MS = Number(process.env.WGBERT_WEB_TIMEOUT_S || 300) * 1000;

const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));

/** A WordLevel tokenizer over the MLM fixtures' vocabulary: [PAD] [CLS] [SEP] [MASK]
 * [UNK], then w5 ... w511, framed [CLS] A [SEP] (tests/common/model_dir.rs writes the same). */
function wordTokenizer(vocabSize) {
  const specials = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"];
  const vocab = {};
  specials.forEach((t, i) => (vocab[t] = i));
  for (let i = specials.length; i < vocabSize; i++) vocab[`w${i}`] = i;
  const special = (t) => ({ SpecialToken: { id: t, type_id: 0 } });
  const seq = (id) => ({ Sequence: { id, type_id: 0 } });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((t, id) => ({
      id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: {
      type: "TemplateProcessing",
      single: [special("[CLS]"), seq("A"), special("[SEP]")],
      pair: [special("[CLS]"), seq("A"), special("[SEP]"), seq("B"), special("[SEP]")],
      special_tokens: {
        "[CLS]": { id: "[CLS]", ids: [1], tokens: ["[CLS]"] },
        "[SEP]": { id: "[SEP]", ids: [2], tokens: ["[SEP]"] },
      },
    },
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordLevel", vocab, unk_token: "[UNK]" },
  };
}

const wordOf = (id) => ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"][id] ?? `w${id}`;

/** The inputs of an id-level fixture that a text gives back: [CLS] ... [SEP] with no
 * special token but [MASK] inside. */
function idInputs(exp) {
  return exp.inputs
    .map((ids, index) => ({ ids, index }))
    .filter(({ ids }) => ids.length >= 2 && ids[0] === 1 && ids.at(-1) === 2)
    .filter(({ ids }) => ids.slice(1, -1).every((id) => id === 3 || id >= 5))
    .map((x) => ({ ...x, text: x.ids.slice(1, -1).map(wordOf).join(" ") }));
}

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    if (e.name === "expected.json") continue;
    const src = path.join(from, e.name);
    if (e.isDirectory()) copyDir(src, path.join(to, e.name));
    else fs.copyFileSync(src, path.join(to, e.name));
  }
}

/** A safetensors file's tensors: name -> {dtype, shape, bytes}. */
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    out[name] = { dtype: t.dtype, shape: t.shape, bytes: buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) };
  }
  return out;
}

function writeSafetensors(file, tensors) {
  const header = {};
  let at = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes.length] };
    at += t.bytes.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...Object.values(tensors).map((t) => t.bytes)]));
}

/** The masked LM fixture's encoder widened to ModernBERT's real vocabulary (new embedding
 * rows and decoder biases, deterministic), with the real tokenizer: what the browser and
 * the `wgbert` CLI must answer alike, text for text. */
function realTokenizerModel(dir, tokenizer) {
  const vocab = 50368;
  const config = readJson(path.join(FIXTURES, "mlm_v4", "config.json"));
  Object.assign(config, {
    vocab_size: vocab, max_position_embeddings: 8192, pad_token_id: 50283, cls_token_id: 50281,
    sep_token_id: 50282, bos_token_id: 50281, eos_token_id: 50282, mask_token_id: 50284,
  });
  const t = readSafetensors(path.join(FIXTURES, "mlm_v4", "model.safetensors"));
  const hidden = config.hidden_size;
  let s = 7;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648 - 0.5) * 0.1;
  const emb = new Float32Array(vocab * hidden).map(rand);
  t["model.embeddings.tok_embeddings.weight"] = { dtype: "F32", shape: [vocab, hidden], bytes: Buffer.from(emb.buffer) };
  t["decoder.bias"] = { dtype: "F32", shape: [vocab], bytes: Buffer.from(new Float32Array(vocab).map(rand).buffer) };
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeSafetensors(path.join(dir, "model.safetensors"), t);
  fs.copyFileSync(tokenizer, path.join(dir, "tokenizer.json"));
}

/** Texts for the real tokenizer: punctuation, digits, accents, CJK, emoji, code, spaces. */
const REAL_TEXTS = [
  "The capital of France is Paris.",
  "  Leading spaces, trailing tabs\t and   runs of spaces  ",
  "Café, naïve, Zürich; 東京 and 北京; emoji 🚀🔥 ok?",
  "fn main() { println!(\"{}\", 40 + 2); } // code, 3.14159 and 1,000,000",
  "I'm sure it's the user's choice: they'll decide, won't they?",
];
const REAL_MASKED = ["The capital of France is [MASK].", "Rust is a [MASK] language, and WebGPU runs [MASK] kernels."];

/** What the `wgbert` CLI prints (JSONL) for `args` over `input`. */
function cli(exe, model, input, args) {
  const r = spawnSync(exe, ["--model", model, "--dtype", "f32", ...args, "--input", input], {
    encoding: "utf8",
    env: { ...process.env, WGPU_BACKEND: process.env.WGPU_BACKEND || "vulkan" },
    maxBuffer: 1 << 28,
  });
  if (r.status !== 0) throw new Error(`wgbert ${args.join(" ")}: ${r.stderr || r.error}`);
  return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

const writeJsonl = (file, rows) => fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n") + "\n");

/** The served models and inputs, under WORK/site. */
function prepare(work) {
  const site = path.join(work, "site");
  fs.rmSync(site, { recursive: true, force: true });
  const models = path.join(site, "models");
  const inputs = path.join(site, "inputs");
  fs.mkdirSync(inputs, { recursive: true });
  const data = {};
  for (const name of ["mlm_v4", "mlm_sharded", "mlm_v5_bf16", "long", "cls_mean"]) {
    const exp = readJson(path.join(FIXTURES, name, "expected.json"));
    copyDir(path.join(FIXTURES, name), path.join(models, name));
    const vocab = readJson(path.join(FIXTURES, name, "config.json")).vocab_size;
    fs.writeFileSync(path.join(models, name, "tokenizer.json"), JSON.stringify(wordTokenizer(vocab)));
    const rows = idInputs(exp);
    const masked = rows.filter((r) => r.ids.includes(3));
    const jsonl = (list) => list.map((r) => ({ text: r.text, source_index: r.index }));
    writeJsonl(path.join(inputs, `${name}.jsonl`), jsonl(rows));
    writeJsonl(path.join(inputs, `${name}_masked.jsonl`), jsonl(masked));
    data[name] = { exp, rows, masked };
  }
  for (const name of ["st_mean_dense", "cross_encoder"]) {
    copyDir(path.join(FIXTURES, name), path.join(models, name));
    data[name] = { exp: readJson(path.join(FIXTURES, name, "expected.json")) };
  }
  writeJsonl(path.join(inputs, "st_mean_dense.jsonl"), data.st_mean_dense.exp.texts.map((text) => ({ text })));
  writeJsonl(path.join(inputs, "cross_encoder.jsonl"), data.cross_encoder.exp.documents.map((text) => ({ text })));
  const exe = process.env.WGBERT_CLI;
  const tokenizer = process.env.WGBERT_TOKENIZER;
  if (exe && tokenizer) {
    const dir = path.join(models, "real_tokenizer");
    realTokenizerModel(dir, tokenizer);
    const texts = path.join(inputs, "real.jsonl");
    const masked = path.join(inputs, "real_masked.jsonl");
    writeJsonl(texts, REAL_TEXTS.map((text, i) => ({ text, id: `t${i}` })));
    writeJsonl(masked, REAL_MASKED.map((text) => ({ text })));
    data.real_tokenizer = {
      embed: cli(exe, dir, texts, ["embed", "--pooling", "none"]),
      fill: cli(exe, dir, masked, ["fill-mask", "--json", "--top-k", "5"]),
    };
  }
  return { site, data };
}

// ---- checks: each returns a string (what was seen) or throws with what went wrong ----

function maxAbs(got, want) {
  if (got.length !== want.length) throw new Error(`${got.length} values, expected ${want.length}`);
  let worst = 0;
  got.forEach((g, i) => {
    const e = Math.abs(g - want[i]);
    worst = Number.isFinite(g) ? Math.max(worst, e) : Infinity;
  });
  return worst;
}

function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  a.forEach((x, i) => {
    d += x * b[i];
    na += x * x;
    nb += b[i] * b[i];
  });
  return d / Math.sqrt(na * nb);
}

/** Per-token hidden states against `last_hidden_state` (every token, or those `positions`
 * lists), f32 by max abs error, f16 by cosine. */
function checkHidden(out, { exp, rows }, dtype) {
  if (out.results.length !== rows.length) throw new Error(`${out.results.length} results for ${rows.length} inputs`);
  let worst = dtype === "f32" ? 0 : 1;
  out.results.forEach((r, i) => {
    const o = exp.outputs[rows[i].index];
    const want = o.last_hidden_state;
    const positions = o.positions ?? want.map((_, t) => t);
    if (r.embedding.length !== rows[i].ids.length) throw new Error(`input ${i}: ${r.embedding.length} tokens, expected ${rows[i].ids.length}`);
    positions.forEach((t, k) => {
      const v = r.embedding[t];
      if (dtype === "f32") worst = Math.max(worst, maxAbs(v, want[k]));
      else worst = Math.min(worst, cosine(v, want[k]));
    });
  });
  if (dtype === "f32" && !(worst <= 1e-4)) throw new Error(`max abs error ${worst.toExponential(2)} > 1e-4`);
  if (dtype === "f16" && !(worst >= 0.999)) throw new Error(`min cosine ${worst.toFixed(5)} < 0.999`);
  return dtype === "f32" ? `max abs error ${worst.toExponential(2)}` : `min cosine ${worst.toFixed(6)}`;
}

/** Fill-mask top 5 against the reference's top 6 at each [MASK] (tests/parity.rs's rule). */
function checkTop5(out, { exp, masked: rows }) {
  const TIE = 1e-4;
  const PROB_RTOL = 1e-4;
  let masks = 0;
  let worst = 0;
  out.results.forEach((r, i) => {
    const o = exp.outputs[rows[i].index];
    for (const m of r.masks) {
      const ids = o.mlm_top6[m.position];
      const logits = o.mlm_top6_logits[m.position];
      const lse = o.mlm_logsumexp[m.position];
      if (m.candidates.length !== 5) throw new Error(`${m.candidates.length} candidates`);
      m.candidates.forEach((c, rank) => {
        const j = ids.findIndex((id, k) => id === c.token_id && (k === rank || Math.abs(logits[k] - logits[rank]) < TIE));
        if (j < 0) throw new Error(`input ${i} position ${m.position} rank ${rank}: id ${c.token_id}, reference ${ids}`);
        const p = Math.exp(logits[j] - lse);
        const err = Math.abs(c.score - p) / p;
        if (!(err <= PROB_RTOL)) throw new Error(`input ${i} position ${m.position}: probability ${c.score}, reference ${p}`);
        worst = Math.max(worst, err);
      });
      masks++;
    }
  });
  const expected = rows.reduce((n, r) => n + r.ids.filter((id) => id === 3).length, 0);
  if (masks !== expected || masks === 0) throw new Error(`${masks} masks answered, ${expected} in the inputs`);
  return `${masks} masks, probability error <= ${worst.toExponential(2)}`;
}

function checkSentence(out, { exp }, dtype) {
  const want = exp.cases.find((c) => c.prompt_name === null && c.prompt === null && c.truncate_dim === null);
  if (out.results.length !== want.embeddings.length) throw new Error(`${out.results.length} results`);
  let worst = dtype === "f32" ? 0 : 1;
  out.results.forEach((r, i) => {
    if (dtype === "f32") worst = Math.max(worst, maxAbs(r.embedding, want.embeddings[i]));
    else worst = Math.min(worst, cosine(r.embedding, want.embeddings[i]));
  });
  if (dtype === "f32" && !(worst <= 1e-4)) throw new Error(`max abs error ${worst.toExponential(2)} > 1e-4`);
  if (dtype === "f16" && !(worst >= 0.999)) throw new Error(`min cosine ${worst.toFixed(5)} < 0.999`);
  return dtype === "f32" ? `max abs error ${worst.toExponential(2)}` : `min cosine ${worst.toFixed(6)}`;
}

function checkRerank(out, { exp }, dtype) {
  const tol = dtype === "f32" ? 1e-4 : 5e-3;
  if (out.results.length !== exp.documents.length) throw new Error(`${out.results.length} results`);
  let worst = 0;
  out.results.forEach((r, k) => {
    if (r.text !== exp.documents[r.index]) throw new Error(`result ${k}: text of another document`);
    worst = Math.max(worst, Math.abs(r.score - exp.scores[r.index]));
    const prev = out.results[k - 1];
    if (prev && exp.scores[prev.index] < exp.scores[r.index] - tol) throw new Error(`rank ${k}: out of the reference's order`);
  });
  if (!(worst <= tol)) throw new Error(`max score error ${worst.toExponential(2)} > ${tol}`);
  return `max score error ${worst.toExponential(2)}`;
}

/** The browser's JSON objects against the CLI's for the same model and input: the same keys
 * and strings, numbers within 1e-4. */
function checkSameAsCli(out, want) {
  if (out.results.length !== want.length) throw new Error(`${out.results.length} results, the CLI ${want.length}`);
  let worst = 0;
  const same = (a, b, at) => {
    if (typeof b === "number") {
      if (typeof a !== "number") throw new Error(`${at}: ${JSON.stringify(a)}, the CLI ${b}`);
      worst = Math.max(worst, Math.abs(a - b));
    } else if (Array.isArray(b)) {
      if (!Array.isArray(a) || a.length !== b.length) throw new Error(`${at}: length ${a?.length}, the CLI ${b.length}`);
      b.forEach((x, i) => same(a[i], x, `${at}[${i}]`));
    } else if (b && typeof b === "object") {
      const [ka, kb] = [Object.keys(a ?? {}).sort(), Object.keys(b).sort()];
      if (ka.join() !== kb.join()) throw new Error(`${at}: keys ${ka}, the CLI's ${kb}`);
      kb.forEach((k) => same(a[k], b[k], `${at}.${k}`));
    } else if (a !== b) throw new Error(`${at}: ${JSON.stringify(a)}, the CLI ${JSON.stringify(b)}`);
  };
  want.forEach((w, i) => same(out.results[i], w, `result ${i}`));
  if (!(worst <= 1e-4)) throw new Error(`max difference ${worst.toExponential(2)} > 1e-4`);
  return `same objects as the CLI, numbers within ${worst.toExponential(2)}`;
}

/** The demo page: loads the model its URL names, shows the adapter, ranks the pasted
 * passages (one hit each, best first), and shows a model's error in place of fill-mask
 * results (the embedder has no MLM head). */
async function runDemo(browser, url, timeoutMs) {
  const page = await browser.newPage();
  try {
    await page.goto(url);
    const text = (id) => page.$eval(`#${id}`, (e) => e.textContent);
    await page.waitForFunction(() => /^model |^Error/.test(document.getElementById("adapter").textContent), { timeout: timeoutMs });
    const adapter = await text("adapter");
    if (!adapter.startsWith("model ")) throw new Error(`the model did not load: ${adapter}`);
    await page.click("#search");
    await page.waitForFunction(() => document.querySelectorAll("#hits .hit").length > 0, { timeout: timeoutMs });
    const scores = await page.$$eval("#hits .score", (els) => els.map((e) => Number(e.textContent)));
    const passages = (await page.$eval("#corpus", (e) => e.value)).split("\n").filter((l) => l.trim()).length;
    if (scores.length !== passages) throw new Error(`${scores.length} hits for ${passages} passages`);
    if (scores.some((x, i) => i > 0 && x > scores[i - 1])) throw new Error(`hits not best first: ${scores}`);
    await page.click("#fill");
    await page.waitForFunction(() => document.getElementById("fills").textContent !== "", { timeout: timeoutMs });
    const fills = await text("fills");
    if (!fills.includes("cannot fill masks")) throw new Error(`fill-mask on an embedder: ${fills}`);
    return `${adapter.split("\n")[1]}; ${scores.length} hits; fill-mask says: ${fills.slice(0, 60)}`;
  } finally {
    await page.close().catch(() => {});
  }
}

function checkClassify(out, { exp, rows }) {
  let worst = 0;
  out.results.forEach((r, i) => (worst = Math.max(worst, maxAbs(r.logits, exp.outputs[rows[i].index].logits))));
  if (out.results.length !== rows.length || !(worst <= 1e-4)) throw new Error(`max logit error ${worst}`);
  return `max logit error ${worst.toExponential(2)}`;
}

function cases(data) {
  const page = (model, input, params) => {
    const q = new URLSearchParams({ model: `/site/models/${model}/`, input: `/site/inputs/${input}.jsonl`, ...params });
    return `/dist/harness.html?${q}`;
  };
  const ok = (out) => {
    if (out.error) throw new Error(`WGBERT_ERROR ${out.error}`);
    return out;
  };
  const dtypeIs = (out, want) => {
    if (out.info?.dtype !== want) throw new Error(`loaded as ${out.info?.dtype}, expected ${want}`);
  };
  const errorNames = (out, ...words) => {
    if (!out.error) throw new Error("no error");
    for (const w of words) if (!out.error.includes(w)) throw new Error(`the error does not name ${w}: ${out.error}`);
    return `error: ${out.error.slice(0, 120)}`;
  };
  const both = ["chromium", "firefox"];
  const real = data.real_tokenizer
    ? [
        { name: "ModernBERT's tokenizer: embed as the CLI", browsers: both, url: page("real_tokenizer", "real", { task: "embed", pooling: "none", dtype: "f32" }), check: (o) => checkSameAsCli(ok(o), data.real_tokenizer.embed) },
        { name: "ModernBERT's tokenizer: fill-mask as the CLI", browsers: both, url: page("real_tokenizer", "real_masked", { task: "fill-mask", top_k: "5", dtype: "f32" }), check: (o) => checkSameAsCli(ok(o), data.real_tokenizer.fill) },
      ]
    : [];
  return [
    ...real,
    { name: "hidden states f32", browsers: both, url: page("mlm_v4", "mlm_v4", { task: "embed", pooling: "none", dtype: "f32" }), check: (o) => checkHidden(ok(o), data.mlm_v4, "f32") },
    { name: "hidden states f32, sharded checkpoint", browsers: ["chromium"], url: page("mlm_sharded", "mlm_sharded", { task: "embed", pooling: "none", dtype: "f32" }), check: (o) => checkHidden(ok(o), data.mlm_sharded, "f32") },
    { name: "hidden states f32, bf16 checkpoint", browsers: ["firefox"], url: page("mlm_v5_bf16", "mlm_v5_bf16", { task: "embed", pooling: "none", dtype: "f32" }), check: (o) => checkHidden(ok(o), data.mlm_v5_bf16, "f32") },
    { name: "hidden states f32, 1337 tokens, windowed attention", browsers: ["firefox"], url: page("long", "long", { task: "embed", pooling: "none", dtype: "f32" }), check: (o) => checkHidden(ok(o), data.long, "f32") },
    { name: "hidden states f16", browsers: ["firefox"], url: page("mlm_v4", "mlm_v4", { task: "embed", pooling: "none", dtype: "f16" }), check: (o) => checkHidden(ok(o), data.mlm_v4, "f16") },
    { name: "fill-mask top-5 f32", browsers: both, url: page("mlm_v4", "mlm_v4_masked", { task: "fill-mask", top_k: "5", dtype: "f32" }), check: (o) => checkTop5(ok(o), data.mlm_v4) },
    { name: "sentence-transformers embeddings, default precision", browsers: both, url: page("st_mean_dense", "st_mean_dense", { task: "embed" }), check: (o, b) => {
      const dtype = b === "firefox" ? "f16" : "f32";
      dtypeIs(ok(o), dtype);
      return `${dtype}: ${checkSentence(o, data.st_mean_dense, dtype)}`;
    } },
    { name: "sentence-transformers embeddings f32", browsers: ["firefox"], url: page("st_mean_dense", "st_mean_dense", { task: "embed", dtype: "f32" }), check: (o) => checkSentence(ok(o), data.st_mean_dense, "f32") },
    { name: "cross-encoder scores f32", browsers: both, url: page("cross_encoder", "cross_encoder", { task: "rerank", dtype: "f32", query: data.cross_encoder.exp.query }), check: (o) => checkRerank(ok(o), data.cross_encoder, "f32") },
    { name: "cross-encoder scores f16", browsers: ["firefox"], url: page("cross_encoder", "cross_encoder", { task: "rerank", dtype: "f16", query: data.cross_encoder.exp.query }), check: (o) => checkRerank(ok(o), data.cross_encoder, "f16") },
    { name: "classifier logits f32", browsers: ["chromium"], url: page("cls_mean", "cls_mean", { task: "classify", dtype: "f32" }), check: (o) => checkClassify(ok(o), data.cls_mean) },
    { name: "the browser's WGSL compiler takes every kernel the adapter can run", browsers: both, url: "/dist/kernels.html", check: (o) => {
      ok(o);
      if (!(o.info?.checked > 0)) throw new Error("no kernel checked");
      if (o.results.length) throw new Error(o.results.map((r) => `${r.kernel}: ${r.message}`).join("; ").slice(0, 2000));
      return `${o.info.checked} kernels`;
    } },
    { name: "the demo page: adapter, search, an error shown", browsers: both, demo: `/dist/demo.html?model=${encodeURIComponent("/site/models/st_mean_dense/")}` },
    { name: "a missing model folder is an error naming config.json", browsers: both, url: page("no_such_model", "mlm_v4", { task: "embed" }), check: (o) => errorNames(o, "config.json") },
    { name: "f16 without shader-f16 is an error naming it", browsers: ["chromium"], url: page("mlm_v4", "mlm_v4", { task: "embed", dtype: "f16" }), check: (o) => errorNames(o, "f16") },
  ];
}

async function main() {
  const [dist, work, ...browsers] = process.argv.slice(2);
  if (!dist || !work || browsers.length === 0) {
    console.error("usage: node web/test/run.mjs DIST WORK BROWSER...");
    process.exit(2);
  }
  const { site, data } = prepare(work);
  const server = await serve({ "/dist/": dist, "/site/": site });
  let failed = 0;
  try {
    for (const b of browsers) {
      const started = Date.now();
      const browser = await launch(b);
      console.log(`== ${b}: ${await browser.version()}`);
      try {
        for (const c of cases(data).filter((c) => c.browsers.includes(b))) {
          const t0 = Date.now();
          const secs = () => ((Date.now() - t0) / 1000).toFixed(1);
          if (c.demo) {
            try {
              console.log(`ok   ${b}: ${c.name}: ${await runDemo(browser, server.url + c.demo, PAGE_TIMEOUT_MS)} (${secs()} s)`);
            } catch (e) {
              failed++;
              console.log(`FAIL ${b}: ${c.name}: ${e.message} (${secs()} s)`);
            }
            continue;
          }
          const out = await runPage(browser, server.url + c.url, PAGE_TIMEOUT_MS);
          try {
            console.log(`ok   ${b}: ${c.name}: ${c.check(out, b)} (${secs()} s)`);
          } catch (e) {
            failed++;
            console.log(`FAIL ${b}: ${c.name}: ${e.message} (${secs()} s)`);
            for (const l of out.logs.slice(-10)) console.log(`     console: ${l}`);
          }
        }
      } finally {
        await browser.close();
      }
      console.log(`== ${b}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
  } finally {
    await server.close();
  }
  if (failed) {
    console.log(`== ${failed} browser check(s) failed`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`run.mjs: ${e.stack ?? e}`);
  process.exit(1);
});
