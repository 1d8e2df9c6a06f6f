// The demo page: load a model (URL or a folder picked from disk), show the adapter, then
// semantic search over pasted passages and fill-mask.

import { Encoder, missingWebGpu } from "./wgbert.js";

const $ = (id) => document.getElementById(id);
let encoder = null;

function show(el, text) {
  el.textContent = text;
}

function onProgress(p) {
  const bar = $("progress");
  bar.max = p.total || 1;
  bar.value = p.done;
  bar.title = `${p.stage} ${p.file ?? p.item ?? ""}`;
}

async function load() {
  const missing = missingWebGpu();
  if (missing) return show($("adapter"), missing);
  const files = $("folder").files;
  const source = files && files.length ? files : $("model").value;
  show($("adapter"), "Loading...");
  try {
    await encoder?.dispose();
    encoder = await Encoder.load(source, { dtype: $("dtype").value || undefined, onProgress });
    const i = encoder.info();
    const c = i.adapter.capabilities;
    const b = i.adapter.browser;
    show($("adapter"), [
      `model ${i.model} (${i.kind}, ${i.dtype}, ${i.dimensions} dimensions)`,
      `adapter ${[b?.vendor, b?.architecture, b?.description || i.adapter.name].filter(Boolean).join(" ") || "(unnamed)"} [${i.adapter.backend}]`,
      `shader-f16 ${c.f16 ? "yes" : "no"}, subgroups ${c.subgroups ? "yes" : "no"}`,
      `max storage binding ${(c.max_storage_binding / 2 ** 20).toFixed(0)} MiB, workgroup storage ${c.max_workgroup_storage / 1024} KiB, ${c.max_invocations} invocations`,
    ].join("\n"));
  } catch (e) {
    encoder = null;
    show($("adapter"), `Error: ${e.message}`);
  }
}

async function search() {
  if (!encoder) return show($("hits"), "Load a model first.");
  const docs = $("corpus").value.split("\n").map((l) => l.trim()).filter(Boolean);
  try {
    const ranked = await encoder.rank($("query").value, docs, { returnDocuments: true });
    $("hits").replaceChildren(...ranked.map((r) => {
      const div = document.createElement("div");
      div.className = "hit";
      div.innerHTML = `<span class="score"></span><span></span>`;
      div.children[0].textContent = r.score.toFixed(3);
      div.children[1].textContent = r.text;
      return div;
    }));
  } catch (e) {
    show($("hits"), `Error: ${e.message}`);
  }
}

async function fill() {
  if (!encoder) return show($("fills"), "Load a model first.");
  try {
    const masks = await encoder.fillMask($("masked").value, { topK: 5 });
    const lines = masks.flatMap((m) => m.candidates.map((c) => `${c.score.toFixed(3)}  ${c.sequence}`));
    $("fills").replaceChildren(...lines.map((l) => Object.assign(document.createElement("div"), { textContent: l })));
  } catch (e) {
    show($("fills"), `Error: ${e.message}`);
  }
}

$("model").value = new URLSearchParams(location.search).get("model") ?? "";
$("load").onclick = load;
$("search").onclick = search;
$("fill").onclick = fill;
if ($("model").value) load();
