// Builds the web UI into dist/, which `portcullis serve` serves at /
// (src/http/http_static.c; see docs/web.md). Everything the page loads is
// a file of its own (no inline script or style, no data: fonts), so the
// server's strict Content-Security-Policy holds; hashed names under
// dist/assets/ let the server mark them immutable; a .gz is written next
// to each compressible file for clients that accept gzip.
import { defineConfig } from 'vite';
import { gzipSync, constants } from 'node:zlib';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const COMPRESSIBLE = /\.(html|js|mjs|css|svg|json|map|wasm|txt)$/;

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

function precompress() {
  let outDir = 'dist';
  return {
    name: 'portcullis-precompress',
    apply: 'build',
    configResolved(cfg) {
      outDir = cfg.build.outDir;
    },
    closeBundle() {
      for (const file of walk(outDir)) {
        if (!COMPRESSIBLE.test(file)) continue;
        const raw = readFileSync(file);
        if (raw.length < 512) continue;
        const gz = gzipSync(raw, { level: constants.Z_BEST_COMPRESSION });
        if (gz.length < raw.length) writeFileSync(file + '.gz', gz);
      }
    },
  };
}

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 1500,
  },
  // `npm run dev`: the UI with hot reload, the API from a local server
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
  plugins: [precompress()],
});
