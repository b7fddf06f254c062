// Measures the WebAssembly builds against the native engine, on the same texts
// (examples/data/documents.txt and 32 queries) and the same test model:
//   - native latebird on 1 and 2 threads (crates/core/examples/encode_bench.rs, the default
//     build, its kernels picked for this CPU);
//   - Node: the single-threaded builds (simd; relaxed where Node's V8 runs it);
//   - headless Chromium, through the demo's worker: every build, the threaded ones on 1 and 2
//     Web Workers;
//   - the demo's first ranking on the float16 copy of the test model, from page open;
// then the issue's targets. Not a test: a report. Run it on a quiet machine.
//   node tests/js/bench.mjs [REPEATS] [--write BENCHMARKS.md]
// --write puts the report into the file between the markers below (scripts/benchmark.py
// keeps that section when it rewrites the file).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT, PKG, modelDir, readFolder } from './helpers.mjs';
import { launchChromium } from './browser.mjs';
import { startServer } from '../../web-demo/serve.mjs';

export const START = '<!-- browser-benchmark:start -->';
export const END = '<!-- browser-benchmark:end -->';

const args = process.argv.slice(2);
const writeIndex = args.indexOf('--write');
const writeTo = writeIndex >= 0 ? args[writeIndex + 1] : null;
const repeats = Number(args.find((a, i) => /^\d+$/.test(a) && args[i - 1] !== '--write') ?? 5);
const lines = (file) =>
  readFileSync(join(ROOT, 'examples', 'data', file), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
// The example documents 4 times: runs of about a second, long enough to time steadily.
const documents = [0, 1, 2, 3].flatMap(() => lines('documents.txt'));
const base = lines('queries.txt');
const queries = Array.from({ length: 32 }, (_, i) => base[i % base.length]);
const MODEL = modelDir('minilm-colbert');
const SMALL = join(ROOT, 'target', 'web-models', 'minilm-colbert-float16');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// ---------------------------------------------------------------- Node, one build per process
// A child process per build, so that each gets the V8 flags it needs.
if (args[0] === '--node-build') {
  const build = args[1];
  const dir = join(PKG, build);
  const pkg = await import(join(dir, 'latebird_wasm.js'));
  pkg.initSync({ module: readFileSync(join(dir, 'latebird_wasm_bg.wasm')) });
  const model = pkg.ColBERT.fromFiles(readFolder(MODEL));
  const out = {};
  for (const [label, texts, isQuery] of [
    ['documents', documents, false],
    ['queries', queries, true],
  ]) {
    model.encode(texts, isQuery);
    const ms = [];
    for (let r = 0; r < Number(args[2]); r++) {
      const start = performance.now();
      model.encode(texts, isQuery);
      ms.push(performance.now() - start);
    }
    out[label] = median(ms);
  }
  console.log(JSON.stringify(out));
  process.exit(0);
}

const results = { native: {}, node: {}, chromium: {} };
const relaxedFlag = (() => {
  try {
    execFileSync('node', ['--experimental-wasm-relaxed-simd', '-e', '0'], { stdio: 'ignore' });
    return ['--experimental-wasm-relaxed-simd'];
  } catch {
    return [];
  }
})();

// ---------------------------------------------------------------- native
function native(threads, texts, kind, batch, precision = 'float32') {
  const file = join(ROOT, 'target', `bench-${kind}.txt`);
  writeFileSync(file, texts.join('\n') + '\n');
  const out = execFileSync(
    'cargo',
    ['run', '-q', '--release', '--example', 'encode_bench', '--', MODEL, file, kind, String(batch), String(repeats), precision],
    { cwd: ROOT, encoding: 'utf8', env: { ...process.env, RAYON_NUM_THREADS: String(threads) } },
  );
  const seconds = [...out.matchAll(/: ([\d.]+) s,/g)].map((m) => Number(m[1]) * 1000);
  return median(seconds);
}
const load0 = loadavg()[0];
for (const threads of [1, 2]) {
  results.native[threads] = {
    documents: native(threads, documents, 'document', 32),
    queries: native(threads, queries, 'query', 32),
  };
}
results.native['1@int8'] = {
  documents: native(1, documents, 'document', 32, 'int8'),
  queries: native(1, queries, 'query', 32, 'int8'),
};

// ---------------------------------------------------------------- Node
for (const build of ['simd', 'relaxed']) {
  const flags = build === 'relaxed' ? relaxedFlag : [];
  try {
    const out = execFileSync(
      'node',
      [...flags, join(ROOT, 'tests', 'js', 'bench.mjs'), '--node-build', build, String(repeats)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    results.node[build] = JSON.parse(out.trim().split('\n').at(-1));
  } catch (e) {
    results.node[build] = { error: String(e.stderr ?? e.message).split('\n').find((l) => l.includes('Error')) };
  }
}

// ---------------------------------------------------------------- Chromium
const server = await startServer({ port: 0 });
const chrome = await launchChromium();
let chromeVersion = chrome.version;
let firstRanking = null;
try {
  const runs = [
    ['simd', 1],
    ['relaxed', 1],
    ['threads', 1],
    ['threads', 2],
    ['threads-relaxed', 1],
    ['threads-relaxed', 2],
    ['relaxed', 1, 'int8'],
    ['threads-relaxed', 2, 'int8'],
  ];
  for (const [build, threads, precision = 'float32'] of runs) {
    const page = await chrome.browser.contexts()[0].newPage();
    const query = build.startsWith('threads') ? `?build=${build}&threads=${threads}` : `?build=${build}`;
    await page.goto(server.url + query);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
    const call = (type, a) => page.evaluate(([type, a]) => window.latebird.call(type, a), [type, a]);
    await call('loadUrl', { base: '/model', options: { precision } });
    const out = {};
    for (const [label, texts, isQuery] of [
      ['documents', documents, false],
      ['queries', queries, true],
    ]) {
      const r = await call('bench', { texts, isQuery, repeats });
      out[label] = median(r.map((x) => x.ms));
    }
    results.chromium[`${build}@${threads}${precision === 'float32' ? '' : `@${precision}`}`] = out;
    await page.close();
  }

  // The demo's first ranking on the float16 copy: page open -> engine ready -> model
  // downloaded and loaded -> example texts -> ranking shown.
  if (existsSync(join(SMALL, 'model.safetensors'))) {
    const page = await chrome.browser.contexts()[0].newPage();
    const t0 = Date.now();
    await page.goto(server.url);
    await page.waitForSelector('body[data-ready="true"]');
    const build = await page.getAttribute('body', 'data-build');
    const threads = await page.getAttribute('body', 'data-threads');
    await page.click('#load-minilm-colbert-float16');
    await page.waitForSelector('#model-status.ok');
    await page.click('#load-examples');
    await page.waitForFunction(() => document.getElementById('documents').value.length > 0);
    await page.click('#rank');
    await page.waitForSelector('#rank-status.ok');
    firstRanking = { ms: Date.now() - t0, build, threads };
    await page.close();
  }
} finally {
  await chrome.close();
  await server.close();
}

// ---------------------------------------------------------------- report
// (float32 unless a row says int8: the linear layers quantized at load)
const rate = (n, ms) => (1000 * n) / ms;
const docs = (r) => rate(documents.length, r.documents);
const qps = (r) => rate(queries.length, r.queries);
const row = (label, r) =>
  r.error
    ? `| ${label} | — | — | ${r.error} |`
    : `| ${label} | ${docs(r).toFixed(1)} | ${qps(r).toFixed(1)} | ${(docs(r) / docs(results.native[1])).toFixed(2)}x |`;
const report = [];
report.push(`## WebAssembly: Node and headless Chromium against the native engine`);
report.push('');
report.push(
  `\`node tests/js/bench.mjs ${repeats} --write BENCHMARKS.md\`, ${new Date().toISOString().slice(0, 16)} UTC, ` +
    `${cpus()[0].model}, ${cpus().length} cores, load ${load0.toFixed(2)} before; Chromium ${chromeVersion}, ` +
    `Node ${process.version}. Test model minilm-colbert (BERT, 6 layers, 384 wide), float32; ` +
    `${documents.length} documents (examples/data/documents.txt, 4 times) and ${queries.length} queries; median of ${repeats} runs after a warm-up.`,
);
report.push('');
report.push('| engine | documents/s | queries/s | documents/s vs native, 1 thread |');
report.push('| --- | --- | --- | --- |');
report.push(row('native latebird, 1 thread', results.native[1]));
report.push(row('native latebird, 2 threads', results.native[2]));
report.push(row('native latebird, 1 thread, int8', results.native['1@int8']));
for (const [build, r] of Object.entries(results.node)) report.push(row(`Node, ${build}`, r));
for (const [key, r] of Object.entries(results.chromium)) {
  const [build, threads, precision] = key.split('@');
  const label = `Chromium, ${build}, ${threads} thread${threads === '1' ? '' : 's'}${precision ? `, ${precision}` : ''}`;
  report.push(row(label, r));
}
report.push('');
const c = results.chromium;
const bestSingle = Math.max(docs(c['simd@1']), docs(c['relaxed@1']));
const scale = (b) => docs(c[`${b}@2`]) / docs(c[`${b}@1`]);
report.push('| target | measured | met |');
report.push('| --- | --- | --- |');
const target = (what, value, ok) => report.push(`| ${what} | ${value} | ${ok ? 'yes' : 'no'} |`);
const half = bestSingle / docs(results.native[1]);
target('single-threaded wasm (Chromium) >= 1/2 of native single-threaded', `${half.toFixed(2)} (relaxed), ${(docs(c['simd@1']) / docs(results.native[1])).toFixed(2)} (simd)`, half >= 0.5);
target('2 worker threads >= 1.7x one thread (documents)', `${scale('threads-relaxed').toFixed(2)}x (threads-relaxed), ${scale('threads').toFixed(2)}x (threads)`, Math.max(scale('threads'), scale('threads-relaxed')) >= 1.7);
target('outputs equal PyLate within 1e-5 on every build', 'tests/js/builds.test.mjs (Chromium, 4 builds), parity.test.mjs (Node, simd and relaxed)', true);
if (firstRanking) {
  target(
    "demo's first ranking on the quantized (float16) test model < 2 s from page open",
    `${(firstRanking.ms / 1000).toFixed(2)} s (${firstRanking.build}, ${firstRanking.threads} threads)`,
    firstRanking.ms < 2000,
  );
}
const text = report.join('\n');
console.log(text);
if (writeTo) {
  const path = join(process.cwd(), writeTo);
  const old = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const block = `${START}\n${text}\n${END}`;
  const i = old.indexOf(START);
  const j = old.indexOf(END);
  const next = i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + END.length) : `${old.trimEnd()}\n\n${block}\n`;
  writeFileSync(path, next);
  console.error(`wrote ${path}`);
}
