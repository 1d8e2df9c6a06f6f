// The test harness: runs one task of one model over a JSONL input and logs, per result,
// `WGBERT_RESULT ` and the JSON object the `wgbert` command line's JSONL output has for that
// task, then `WGBERT_DONE`; or `WGBERT_ERROR <message>` on the first error. Before the
// results, `WGBERT_INFO <json>` says what was loaded on which adapter.
//
// Query parameters: model (a folder URL), input (a JSONL URL, one {"text": ...} per line),
// task (embed | fill-mask | classify | rerank), pooling (cls | mean | none), dtype (f32 |
// f16), top_k (fill-mask; default 5), query (rerank).

import { Encoder } from "./wgbert.js";

const log = (line) => {
  console.log(line);
  document.getElementById("log").textContent += `${line.slice(0, 200)}\n`;
};

async function readInput(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`input ${url}: HTTP ${response.status}`);
  const lines = (await response.text()).split("\n").filter((l) => l.trim() !== "");
  return lines.map((line, i) => {
    let item;
    try {
      item = JSON.parse(line);
    } catch (e) {
      throw new Error(`input line ${i + 1}: not JSON: ${e.message}`);
    }
    if (typeof item?.text !== "string") throw new Error(`input line ${i + 1}: no "text" string`);
    return item;
  });
}

async function main() {
  const q = new URLSearchParams(location.search);
  const need = (k) => {
    const v = q.get(k);
    if (v === null || v === "") throw new Error(`the query parameter '${k}' is missing`);
    return v;
  };
  const task = need("task");
  const tasks = ["embed", "fill-mask", "classify", "rerank"];
  if (!tasks.includes(task)) throw new Error(`task must be one of ${tasks.join(", ")}, got '${task}'`);
  const items = await readInput(need("input"));
  const texts = items.map((i) => i.text);
  const encoder = await Encoder.load(need("model"), { dtype: q.get("dtype") || undefined });
  log(`WGBERT_INFO ${JSON.stringify(encoder.info())}`);
  const started = performance.now();
  if (task === "embed") {
    const pooling = q.get("pooling") || undefined;
    const raw = await encoder.embedRaw(texts, { pooling });
    raw.forEach((e, index) => {
      const { text, ...extra } = items[index];
      const out = { ...extra, index, n_tokens: e.n_tokens };
      if (e.indices) {
        out.indices = Array.from(e.indices);
        out.values = Array.from(e.values);
      } else if (pooling === "none") {
        out.embedding = e.vectors.map((v) => Array.from(v));
      } else {
        out.embedding = Array.from(e.vectors[0]);
      }
      log(`WGBERT_RESULT ${JSON.stringify(out)}`);
    });
  } else if (task === "fill-mask") {
    const topK = Number(q.get("top_k") || 5);
    const masks = await encoder.fillMask(texts, { topK });
    masks.forEach((m, i) => log(`WGBERT_RESULT ${JSON.stringify({ text: texts[i], masks: m })}`));
  } else if (task === "classify") {
    const classes = await encoder.classify(texts);
    classes.forEach((c, i) => {
      const out = { text: texts[i], label: c.label, score: c.score, logits: c.logits };
      log(`WGBERT_RESULT ${JSON.stringify(out)}`);
    });
  } else {
    const ranked = await encoder.rank(need("query"), texts, { returnDocuments: true });
    for (const r of ranked) {
      log(`WGBERT_RESULT ${JSON.stringify({ index: r.corpus_id, score: r.score, text: r.text })}`);
    }
  }
  log(`WGBERT_TIME ${JSON.stringify({ task_ms: performance.now() - started })}`);
  await encoder.dispose();
  log("WGBERT_DONE");
}

const oneLine = (e) => String(e?.message ?? e).replace(/\s*\n\s*/g, " ");
addEventListener("unhandledrejection", (e) => log(`WGBERT_ERROR ${oneLine(e.reason)}`));
main().catch((e) => log(`WGBERT_ERROR ${oneLine(e)}`));
