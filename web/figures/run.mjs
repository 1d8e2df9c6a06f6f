// Drives web/figures/figures.html in each browser (scripts/web_figures.sh): wgbert-web and
// transformers.js on the same exported model and texts, in the same page. Prints a table per
// browser (median time per engine, their ratio, the embeddings' agreement) and writes the
// figures as JSON. The adapters here are CPUs (SwiftShader, lavapipe): the ratios say how
// the two engines compare on them, nothing about a GPU.
// Usage: node web/figures/run.mjs DIST MODEL_DIR WORK RUNS BROWSER...

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { launch, runPage } from "../test/browsers.mjs";
import { serve } from "../test/serve.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Deterministic English-like texts of 8 to 200 words (ModernBERT's tokenizer makes about
 * one token per word of these). */
function texts(n) {
  const words = ("the a of and to in is was for on with as by at from that this are be city river " +
    "model vector search query document capital france paris rust code gpu shader browser fast small " +
    "large old new red blue green tree bird fish dog cat run eat sleep read write language memory").split(" ");
  let s = 12345;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, (_, i) => {
    const len = 8 + Math.floor(rand() * 192);
    const t = Array.from({ length: len }, () => words[Math.floor(rand() * words.length)]).join(" ");
    return `${i}: ${t}.`;
  });
}

async function main() {
  const [dist, model, work, runs, ...browsers] = process.argv.slice(2);
  if (!browsers.length) {
    console.error("usage: node web/figures/run.mjs DIST MODEL_DIR WORK RUNS BROWSER...");
    process.exit(2);
  }
  fs.mkdirSync(work, { recursive: true });
  const site = path.join(work, "site");
  fs.mkdirSync(site, { recursive: true });
  const list = texts(Number(process.env.WGBERT_FIGURE_TEXTS || 16));
  fs.writeFileSync(path.join(site, "texts.jsonl"), list.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  const server = await serve({
    "/dist/": dist,
    "/figures/": HERE,
    "/tjs/": process.env.WGBERT_NODE_MODULES,
    "/site/model/": model,
    "/site/": site,
  });
  const all = [];
  try {
    for (const b of browsers) {
      const browser = await launch(b);
      const version = await browser.version();
      try {
        const q = new URLSearchParams({ model: "/site/model/", texts: "/site/texts.jsonl", runs });
        const out = await runPage(browser, `${server.url}/figures/figures.html?${q}`, 1800 * 1000);
        const byEngine = Object.fromEntries(out.extra.filter((f) => f.engine).map((f) => [f.engine, f]));
        const agreement = out.extra.find((f) => f.agreement !== undefined)?.agreement;
        const w = byEngine["wgbert-web"];
        const t = byEngine["transformers.js"];
        const row = { browser: b, version, texts: list.length, wgbert: w, transformers_js: t, agreement, error: out.error };
        if (w?.median_ms && t?.median_ms) row.ratio = t.median_ms / w.median_ms;
        all.push(row);
        console.log(`== ${b} (${version}), ${list.length} texts, ${w?.tokens ?? "?"} tokens, median of ${runs} runs after a warm-up`);
        for (const [name, f] of [["wgbert-web", w], ["transformers.js", t]]) {
          if (!f) console.log(`   ${name}: no result ${out.error ?? ""}`);
          else if (f.error) console.log(`   ${name}: failed: ${f.error}`);
          else console.log(`   ${name}: ${f.median_ms.toFixed(0)} ms (load ${f.load_ms.toFixed(0)} ms)`);
        }
        if (row.ratio) console.log(`   transformers.js / wgbert-web time: ${row.ratio.toFixed(2)}`);
        if (agreement !== undefined) console.log(`   embeddings agree: min cosine ${agreement.toFixed(6)}`);
        for (const l of out.logs.slice(-5)) console.log(`   console: ${l}`);
      } finally {
        await browser.close();
      }
    }
  } finally {
    await server.close();
  }
  fs.writeFileSync(path.join(work, "figures.json"), JSON.stringify(all, null, 2));
  const bad = all.filter((r) => r.agreement !== undefined && r.agreement < 0.999);
  if (bad.length) {
    console.log(`== the engines disagree in ${bad.map((r) => r.browser).join(", ")} (cosine < 0.999)`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(`figures: ${e.stack ?? e}`);
  process.exit(1);
});
