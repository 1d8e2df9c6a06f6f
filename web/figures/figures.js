// Embeds the same texts with wgbert-web and with transformers.js (ONNX Runtime Web on
// WebGPU) from the same exported model in this page, both f32, mean pooling, normalized:
// logs `WGBERT_FIGURE {engine, load_ms, run_ms, median_ms, tokens}` per engine (a warm-up
// run, then `runs` timed ones), then `WGBERT_FIGURE {"agreement": min cosine}` and
// `WGBERT_DONE`; or `WGBERT_ERROR <message>`. An engine that fails is logged as
// `WGBERT_FIGURE {engine, error}` and the other still runs.
// Query parameters: model (folder URL: safetensors for wgbert, onnx/model.onnx for
// transformers.js), texts (JSONL URL), runs (default 3).

import { Encoder } from "/dist/wgbert.js";

const log = (line) => {
  console.log(line);
  document.getElementById("log").textContent += `${line.slice(0, 300)}\n`;
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(run, runs) {
  await run();
  const times = [];
  let out;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    out = await run();
    times.push(performance.now() - t0);
  }
  return { out, times };
}

async function wgbert(model, texts, runs) {
  const t0 = performance.now();
  const enc = await Encoder.load(model, { dtype: "f32" });
  const load_ms = performance.now() - t0;
  const tokens = (await enc.embedRaw(texts, { pooling: "cls" })).reduce((n, e) => n + e.n_tokens, 0);
  const { out, times } = await timed(() => enc.encode(texts, { pooling: "mean", normalize: true }), runs);
  await enc.dispose();
  return { figure: { engine: "wgbert-web", load_ms, run_ms: times, median_ms: median(times), tokens }, vectors: out };
}

async function transformersJs(model, texts, runs) {
  const tjs = await import("/tjs/@huggingface/transformers/dist/transformers.web.js");
  const base = new URL(model, location.href);
  const parts = base.pathname.replace(/\/$/, "").split("/");
  tjs.env.allowRemoteModels = false;
  tjs.env.allowLocalModels = true;
  tjs.env.useBrowserCache = false;
  // A path, not a URL: transformers.js looks for local files only under a path.
  tjs.env.localModelPath = `${parts.slice(0, -1).join("/")}/`;
  tjs.env.backends.onnx.wasm.wasmPaths = "/tjs/onnxruntime-web/dist/";
  tjs.env.backends.onnx.wasm.numThreads = 1;
  const t0 = performance.now();
  const extractor = await tjs.pipeline("feature-extraction", parts.at(-1), { device: "webgpu", dtype: "fp32" });
  const load_ms = performance.now() - t0;
  const { out, times } = await timed(async () => {
    const t = await extractor(texts, { pooling: "mean", normalize: true });
    const dims = t.dims[1];
    return texts.map((_, i) => t.data.subarray(i * dims, (i + 1) * dims));
  }, runs);
  await extractor.dispose?.();
  return { figure: { engine: "transformers.js", load_ms, run_ms: times, median_ms: median(times) }, vectors: out };
}

function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}

async function main() {
  const q = new URLSearchParams(location.search);
  const model = q.get("model");
  const runs = Number(q.get("runs") || 3);
  const lines = (await (await fetch(q.get("texts"))).text()).split("\n").filter(Boolean);
  const texts = lines.map((l) => JSON.parse(l).text);
  const results = [];
  for (const [engine, run] of [["wgbert-web", wgbert], ["transformers.js", transformersJs]]) {
    try {
      const r = await run(model, texts, runs);
      log(`WGBERT_FIGURE ${JSON.stringify(r.figure)}`);
      results.push(r);
    } catch (e) {
      log(`WGBERT_FIGURE ${JSON.stringify({ engine, error: String(e?.message ?? e).slice(0, 500) })}`);
    }
  }
  if (results.length === 2) {
    const [a, b] = results.map((r) => r.vectors);
    const agreement = Math.min(...a.map((v, i) => cosine(v, b[i])));
    log(`WGBERT_FIGURE ${JSON.stringify({ agreement })}`);
  }
  log("WGBERT_DONE");
}

main().catch((e) => log(`WGBERT_ERROR ${String(e?.message ?? e).replace(/\s*\n\s*/g, " ")}`));
