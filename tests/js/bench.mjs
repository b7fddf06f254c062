// Measures the wasm package in headless Chromium (the demo's worker) and in Node: model load
// time and encoding throughput on examples/data/documents.txt and 32 queries.
//   node tests/js/bench.mjs [REPEATS]
// Not a test: prints a table. Compare with the native engine single-threaded:
//   RAYON_NUM_THREADS=1 cargo run --release --example encode_bench -- \
//     tests/models/minilm-colbert examples/data/documents.txt document 32 REPEATS
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, loadPackage, modelDir, readFolder } from './helpers.mjs';
import { launchChromium } from './browser.mjs';
import { startServer } from '../../web-demo/serve.mjs';

const repeats = Number(process.argv[2] ?? 5);
const lines = (file) =>
  readFileSync(join(ROOT, 'examples', 'data', file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
const documents = lines('documents.txt');
const base = lines('queries.txt');
const queries = Array.from({ length: 32 }, (_, i) => base[i % base.length]);

function summary(label, runs) {
  const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
  const median = ms[Math.floor(ms.length / 2)];
  const { texts, tokens } = runs[0];
  console.log(
    `${label.padEnd(28)} ${texts} texts, ${tokens} tokens: median ${median.toFixed(1)} ms ` +
      `(${((1000 * texts) / median).toFixed(1)} texts/s, ${((1000 * tokens) / median).toFixed(0)} tokens/s; ` +
      `runs ${ms.map((m) => m.toFixed(0)).join(', ')})`,
  );
}

// Node
{
  const pkg = await loadPackage();
  const files = readFolder(modelDir('minilm-colbert'));
  let start = performance.now();
  const model = pkg.ColBERT.fromFiles(files);
  console.log(`node: load ${(performance.now() - start).toFixed(0)} ms`);
  for (const [label, texts, isQuery] of [
    ['node documents', documents, false],
    ['node 32 queries', queries, true],
  ]) {
    model.encode(texts, isQuery);
    const runs = [];
    for (let r = 0; r < repeats; r++) {
      start = performance.now();
      const out = model.encode(texts, isQuery);
      runs.push({ ms: performance.now() - start, texts: texts.length, tokens: out.reduce((n, e) => n + e.rows, 0) });
    }
    summary(label, runs);
  }
  model.free();
}

// Chromium
const server = await startServer({ port: 0 });
const chrome = await launchChromium();
try {
  const page = await chrome.browser.contexts()[0].newPage();
  await page.goto(server.url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
  const info = await page.evaluate(() => window.latebird.call('loadUrl', { base: '/model' }));
  console.log(`chromium ${chrome.version}: download ${info.fetchMs.toFixed(0)} ms, load ${info.loadMs.toFixed(0)} ms`);
  for (const [label, texts, isQuery] of [
    ['chromium documents', documents, false],
    ['chromium 32 queries', queries, true],
  ]) {
    const runs = await page.evaluate(
      ([texts, isQuery, repeats]) => window.latebird.call('bench', { texts, isQuery, repeats }),
      [texts, isQuery, repeats],
    );
    summary(label, runs);
  }
} finally {
  await chrome.close();
  await server.close();
}
