// The npm package as users get it: `npm pack` of crates/wasm/pkg, installed from the tarball
// into a fresh project, then (1) imported in Node through its entry point and a build's
// subpath, (2) type-checked by TypeScript, whose checks must reject wrong calls, and
// (3) bundled by esbuild into a browser app that runs on 2 threads in headless Chromium.
// Each gives the outputs of the build the other tests check against PyLate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PKG, ROOT, loadPackage, maxAbsDiff, modelDir, readFolder } from './helpers.mjs';
import { launchChromium } from './browser.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BIN = join(HERE, 'node_modules', '.bin');
const BUILDS = ['simd', 'relaxed', 'threads', 'threads-relaxed'];
const QUERY = 'how do bees make honey?';
const DOCUMENTS = readFileSync(join(ROOT, 'examples', 'data', 'documents.txt'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter(Boolean);

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`${cmd} ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** The ranking of DOCUMENTS for QUERY by the build the Node tests run (the reference here). */
async function expected() {
  const pkg = await loadPackage();
  const model = pkg.ColBERT.fromFiles(readFolder(modelDir('minilm-colbert')));
  const docs = model.encode(DOCUMENTS, false);
  const [query] = model.encode([QUERY], true);
  const ranking = pkg.topK(query, docs, DOCUMENTS.length);
  model.free();
  return { ranking, query };
}

function assertSameRanking(got, want, what) {
  assert.deepEqual(
    got.map((r) => r.id),
    want.map((r) => r.id),
    `${what}: ranking`,
  );
  got.forEach((r, i) => assert.ok(Math.abs(r.score - want[i].score) <= 1e-5, `${what}: rank ${i}`));
}

const work = mkdtempSync(join(tmpdir(), 'latebird-npm-'));
const app = join(work, 'app');
let tarball;

test('npm pack holds the entry point, its types and the four builds', () => {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], PKG));
  tarball = join(work, packed.filename);
  const files = new Set(packed.files.map((f) => f.path));
  for (const file of ['package.json', 'README.md', 'index.js', 'index.d.ts']) {
    assert.ok(files.has(file), `${file} is not in the tarball`);
  }
  for (const build of BUILDS) {
    for (const file of ['latebird_wasm.js', 'latebird_wasm.d.ts', 'latebird_wasm_bg.wasm']) {
      assert.ok(files.has(`${build}/${file}`), `${build}/${file} is not in the tarball`);
    }
  }
  // The thread pool's worker script comes with the threaded builds.
  for (const build of ['threads', 'threads-relaxed']) {
    assert.ok(
      [...files].some((f) => f.startsWith(`${build}/snippets/`) && f.endsWith('workerHelpers.no-bundler.js')),
      `${build}: no worker helper`,
    );
  }
  const manifest = JSON.parse(readFileSync(join(PKG, 'package.json'), 'utf8'));
  assert.equal(manifest.exports['.'].types, './index.d.ts');
  console.log(`${packed.filename}: ${packed.files.length} files, ${(packed.size / 1e6).toFixed(1)} MB packed`);
});

test('the tarball installs into a fresh project and works in Node', async () => {
  mkdirSync(app, { recursive: true });
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'fresh-app', private: true, type: 'module' }, null, 2),
  );
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], app);
  const script = `
    import { load, choose } from 'latebird-wasm';
    import { initSync, ColBERT, buildInfo } from 'latebird-wasm/simd';
    import { readFileSync, readdirSync, statSync } from 'node:fs';
    import { join, relative } from 'node:path';
    import { createRequire } from 'node:module';
    const [dir, query, ...documents] = process.argv.slice(2);
    const files = {};
    const walk = (d) => readdirSync(d).forEach((e) => {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p); else files[relative(dir, p)] = readFileSync(p);
    });
    walk(dir);
    const lb = await load();
    const model = lb.ColBERT.fromFiles(files);
    const ranking = lb.topK(model.encode([query], true)[0], model.encode(documents, false), documents.length);
    // A build's own subpath, initialised by hand.
    const wasm = createRequire(import.meta.url).resolve('latebird-wasm/simd').replace(/latebird_wasm\\.js$/, 'latebird_wasm_bg.wasm');
    initSync({ module: readFileSync(wasm) });
    const [q] = ColBERT.fromFiles(files).encode([query], true);
    let threadsError = null;
    try { choose({ threads: 2 }); } catch (e) { threadsError = e.name + ': ' + e.message; }
    console.log(JSON.stringify({ build: lb.build, why: lb.why, ranking, simd: buildInfo(), query: Array.from(q.data), threadsError }));
  `;
  writeFileSync(join(app, 'check.mjs'), script);
  const out = JSON.parse(run('node', ['check.mjs', modelDir('minilm-colbert'), QUERY, ...DOCUMENTS], app));
  const want = await expected();
  assert.match(out.build, /^(simd|relaxed)$/, out.why);
  assertSameRanking(out.ranking, want.ranking, `Node, ${out.build} build`);
  assert.equal(out.simd.multiThreaded, false);
  assert.ok(maxAbsDiff(Float32Array.from(out.query), want.query.data) <= 1e-5);
  assert.match(out.threadsError, /^InvalidInputError: threads: Node runs the single-threaded builds/);
});

test('TypeScript checks the package types and rejects wrong calls', () => {
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        // esnext: the builds' classes declare [Symbol.dispose] (wasm-bindgen's output).
        lib: ['esnext', 'dom'],
        types: [],
      },
      files: ['check.ts'],
    }),
  );
  writeFileSync(
    join(app, 'check.ts'),
    `import { load, choose, type Latebird, type Embeddings, type BuildName } from 'latebird-wasm';
const lb: Latebird = await load({ threads: 'auto', relaxedSimd: 'auto' });
const build: BuildName = choose({ build: 'threads', threads: 2 }).build;
const model = lb.ColBERT.fromFiles(new Map<string, Uint8Array>(), { documentLength: 64 });
const out: Embeddings[] = model.encode(['a text'], false, 2);
const rows: number = out[0].rows + lb.threads;
const ranked = lb.topK(out[0], out, 3);
const best: number = ranked[0].score;
// @ts-expect-error: not a build
load({ build: 'threads-simd' });
// @ts-expect-error: threads is a count, a boolean or "auto"
load({ threads: 'many' });
// @ts-expect-error: encode needs isQuery
model.encode(['a text']);
// @ts-expect-error: embeddings hold a Float32Array
const wrong: Float64Array = out[0].data;
export { build, rows, best, wrong };
`,
  );
  run(join(BIN, 'tsc'), ['-p', 'tsconfig.json'], app);
});

test('esbuild bundles it into a browser app that ranks on 2 threads', { timeout: 180_000 }, async (t) => {
  const web = join(app, 'web');
  const dist = join(web, 'dist');
  mkdirSync(dist, { recursive: true });
  writeFileSync(
    join(web, 'app.js'),
    `import { load } from 'latebird-wasm';
const lb = await load({ threads: 2 });
const { files } = await (await fetch('/model.json')).json();
const bytes = {};
await Promise.all(files.map(async (f) => { bytes[f] = new Uint8Array(await (await fetch('/model/' + f)).arrayBuffer()); }));
const model = lb.ColBERT.fromFiles(bytes);
const [query] = model.encode([window.QUERY], true);
const ranking = lb.topK(query, model.encode(window.DOCUMENTS, false), window.DOCUMENTS.length);
window.result = { build: lb.build, threads: lb.threads, ranking };
`,
  );
  run(join(BIN, 'esbuild'), ['app.js', '--bundle', '--format=esm', '--outfile=dist/app.js', '--log-level=error'], web);
  for (const build of BUILDS) {
    cpSync(join(app, 'node_modules', 'latebird-wasm', build), join(dist, build), { recursive: true });
  }
  const bundle = readFileSync(join(dist, 'app.js'), 'utf8');
  assert.ok(!bundle.includes('wasm-bindgen'), 'the builds must stay out of the bundle');
  writeFileSync(
    join(dist, 'index.html'),
    `<!doctype html><script>window.QUERY = ${JSON.stringify(QUERY)}; window.DOCUMENTS = ${JSON.stringify(DOCUMENTS)};</script><script type="module" src="app.js"></script>`,
  );

  const model = modelDir('minilm-colbert');
  const { files } = { files: Object.keys(readFolder(model)) };
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    };
    try {
      let body;
      if (path === '/model.json') body = JSON.stringify({ files });
      else if (path.startsWith('/model/') && files.includes(path.slice(7))) body = readFileSync(join(model, path.slice(7)));
      else if (!path.includes('..')) body = readFileSync(join(dist, path === '/' ? 'index.html' : path));
      res.writeHead(200, { ...headers, 'Content-Type': types[extname(path)] ?? (path === '/' ? 'text/html' : 'application/octet-stream') });
      res.end(body);
    } catch {
      res.writeHead(404, headers);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((done) => { server.close(() => done()); server.closeAllConnections(); }));
  const chrome = await launchChromium();
  t.after(() => chrome.close());
  const page = await chrome.browser.contexts()[0].newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  await page.waitForFunction(() => window.result !== undefined || false, null, { timeout: 120_000 }).catch((e) => {
    throw new Error(`${e.message}; ${problems.join('; ')}`);
  });
  const result = await page.evaluate(() => window.result);
  assert.match(result.build, /^threads/);
  assert.equal(result.threads, 2);
  assertSameRanking(result.ranking, (await expected()).ranking, `bundled app, ${result.build} build`);
  assert.deepEqual(problems, []);
});

test.after(() => rmSync(work, { recursive: true, force: true }));
