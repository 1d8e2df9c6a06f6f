// A static file server on 127.0.0.1 for the browser tests and figures: URL prefixes mapped
// to folders, the content types a page needs (.wasm as application/wasm), nothing outside
// the folders, and no directory listings.

import fs from "node:fs";
import http from "node:http";
import path from "node:path";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".jsonl": "application/jsonl",
  ".txt": "text/plain; charset=utf-8",
};

/** Serves `routes` ({"/prefix/": folder}) on an ephemeral port of 127.0.0.1; resolves to
 * `{url, close}` where `url` is the server's base ("http://127.0.0.1:PORT"). */
export function serve(routes) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://127.0.0.1");
    const pathname = decodeURIComponent(url.pathname);
    const prefix = Object.keys(routes)
      .filter((p) => pathname.startsWith(p))
      .sort((a, b) => b.length - a.length)[0];
    const root = prefix && path.resolve(routes[prefix]);
    const file = root && path.resolve(root, "." + pathname.slice(prefix.length - 1));
    if (!file || (file !== root && !file.startsWith(root + path.sep))) {
      res.writeHead(404).end();
      return;
    }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, {
        "content-type": TYPES[path.extname(file)] ?? "application/octet-stream",
        "content-length": st.size,
        "cache-control": "no-store",
      });
      fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      resolve({ url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}
