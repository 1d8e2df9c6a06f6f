// Headless browsers driven by puppeteer-core (no browser download: Debian's own), and a
// page run to the end of its console protocol: `WGBERT_RESULT <json>` lines, then
// `WGBERT_DONE` or `WGBERT_ERROR <message>`.
//
// chromium: `--enable-unsafe-webgpu`; its adapter here is SwiftShader (a CPU Vulkan, no
// shader-f16). firefox: Firefox ESR over WebDriver BiDi with WebGPU turned on; its adapter
// is lavapipe (a CPU Vulkan, with shader-f16).

import { createRequire } from "node:module";

/** puppeteer-core from the folder that holds the test's node_modules (WGBERT_NODE_MODULES). */
export function puppeteer() {
  const dir = process.env.WGBERT_NODE_MODULES;
  if (!dir) throw new Error("WGBERT_NODE_MODULES is not set (scripts/test_web.sh sets it)");
  return createRequire(`${dir}/`)("puppeteer-core");
}

export const BROWSERS = {
  chromium: {
    executable: process.env.WGBERT_CHROMIUM || "/usr/bin/chromium",
    options: (exe) => ({
      executablePath: exe,
      headless: true,
      // Debian's closed network: no background connections, no component updates.
      args: [
        "--no-sandbox",
        "--enable-unsafe-webgpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    }),
  },
  firefox: {
    executable: process.env.WGBERT_FIREFOX || "/usr/bin/firefox-esr",
    options: (exe) => ({
      browser: "firefox",
      executablePath: exe,
      headless: true,
      extraPrefsFirefox: {
        "dom.webgpu.enabled": true,
        "gfx.webgpu.ignore-blocklist": true,
        "app.update.enabled": false,
        "network.captive-portal-service.enabled": false,
      },
    }),
  },
};

export async function launch(name) {
  const b = BROWSERS[name];
  return puppeteer().launch(b.options(b.executable));
}

/** Opens `url` in a new page of `browser` and collects its protocol lines until DONE or
 * ERROR, or `timeoutMs`. Resolves to `{results, info, error, time, extra, logs}`. */
export async function runPage(browser, url, timeoutMs) {
  const page = await browser.newPage();
  const out = { results: [], info: null, error: null, time: null, extra: [], logs: [] };
  const finished = new Promise((resolve) => {
    page.on("console", (m) => {
      const text = m.text();
      const [tag, ...rest] = text.split(" ");
      const body = rest.join(" ");
      if (tag === "WGBERT_RESULT") out.results.push(JSON.parse(body));
      else if (tag === "WGBERT_INFO") out.info = JSON.parse(body);
      else if (tag === "WGBERT_TIME") out.time = JSON.parse(body);
      else if (tag === "WGBERT_FIGURE") out.extra.push(JSON.parse(body));
      else if (tag === "WGBERT_ERROR") {
        out.error = body;
        resolve();
      } else if (tag === "WGBERT_DONE") resolve();
      else out.logs.push(text.slice(0, 500));
    });
    page.on("pageerror", (e) => out.logs.push(`pageerror: ${e.message ?? e}`));
  });
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => {
      out.error ??= `timed out after ${timeoutMs / 1000} s`;
      resolve();
    }, timeoutMs);
  });
  await page.goto(url);
  await Promise.race([finished, timeout]);
  clearTimeout(timer);
  await page.close().catch(() => {});
  return out;
}
