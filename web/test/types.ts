// Compiled by scripts/test_web.sh (tsc --strict --noEmit): the package's TypeScript types
// (js/wgbert.d.ts) take the uses README shows, and give back what the code returns.
import { Encoder, initWgbert, missingWebGpu, type ModelInfo, type Progress } from "../js/wgbert";

async function uses(files: FileList): Promise<void> {
  const onProgress = (p: Progress) => console.log(p.stage, p.done, p.total, p.file ?? p.item);
  await initWgbert(new URL("pkg/wgbert_web_bg.wasm", "https://example.com/"));
  const model = await Encoder.load("https://example.com/models/m/", { dtype: "f16", maxTokens: 4096, onProgress });
  const local = await Encoder.load(files, { name: "picked folder" });
  const bytes = await Encoder.load(new Map([["config.json", new Uint8Array(2)]]));
  const one: Float32Array = await model.encode("a query", { promptName: "query" });
  const many: Float32Array[] = await model.encode(["a", "b"], { normalize: true, dimensions: 64 });
  const tokens: Float32Array[][] = await model.encode(["a"], { pooling: "none" });
  const colbert: Float32Array[] = await model.encode("q", { multiVector: "query" });
  const masks = await model.fillMask("The capital of France is [MASK].", { topK: 5 });
  const perText = await model.fillMask(["a [MASK]", "b [MASK]"]);
  const ranked = await model.rank("q", ["d1", "d2"], { topK: 1, returnDocuments: true });
  const label = (await model.classify("great")).label;
  const info: ModelInfo = model.info();
  console.log(one, many, tokens, colbert, masks[0].candidates[0].token_id, perText[1].length);
  console.log(ranked[0].corpus_id, ranked[0].text, label, info.adapter.capabilities.f16, missingWebGpu());
  await Promise.all([model.dispose(), local.dispose(), bytes.dispose()]);
}

void uses;
