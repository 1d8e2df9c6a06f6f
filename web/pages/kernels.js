// Gives every wgbert kernel the page's adapter can run to the browser's WGSL compiler (every
// variant, not only a model's) and logs `WGBERT_RESULT {"kernel", "message"}` per failure,
// `WGBERT_INFO {"checked": n}`, then `WGBERT_DONE`, or `WGBERT_ERROR <message>`.

import init, { checkKernels } from "./pkg/wgbert_web.js";

const log = (line) => {
  console.log(line);
  document.getElementById("log").textContent += `${line.slice(0, 300)}\n`;
};

async function main() {
  await init();
  const report = JSON.parse(await checkKernels());
  log(`WGBERT_INFO ${JSON.stringify({ checked: report.checked })}`);
  for (const f of report.failures) log(`WGBERT_RESULT ${JSON.stringify(f)}`);
  log("WGBERT_DONE");
}

main().catch((e) => log(`WGBERT_ERROR ${String(e?.message ?? e).replace(/\s*\n\s*/g, " ")}`));
