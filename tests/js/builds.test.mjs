// Every WebAssembly build in headless Chromium, through the demo's worker and the package's
// load(): the multi-threaded builds on a pool of 2 Web Workers (the demo server sends the
// COOP/COEP headers that allow it), the relaxed-SIMD builds with fused multiply-add. Each
// encodes every committed PyLate reference (tests/fixtures/references) within 1e-5, as
// parity.test.mjs checks the single-threaded build in Node. Without cross-origin isolation
// the package falls back to one thread and says why.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, readSafetensors, maxAbsDiff, optionsOf } from './helpers.mjs';
import { launchChromium, newPage } from './browser.mjs';
import { startServer } from '../../web-demo/serve.mjs';

const TOLERANCE = 1e-5;
const BUILDS = ['simd', 'relaxed', 'threads', 'threads-relaxed'];
const referenceDir = join(ROOT, 'tests', 'fixtures', 'references');
const references = readdirSync(referenceDir)
  .filter((f) => f.endsWith('.safetensors'))
  .sort()
  .map((file) => ({ file, ...readSafetensors(join(referenceDir, file)) }));

async function openDemo(chrome, url) {
  const { page, problems } = await newPage(chrome);
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"], #engine.error');
  return { page, problems };
}

test('every build encodes like PyLate in headless Chromium', { timeout: 900_000 }, async (t) => {
  const server = await startServer({ port: 0 });
  t.after(() => server.close());
  const chrome = await launchChromium();
  t.after(() => chrome.close());

  for (const build of BUILDS) {
    await t.test(build, async () => {
      const threads = build.startsWith('threads') ? 2 : 1;
      const query = build.startsWith('threads') ? `?build=${build}&threads=2` : `?build=${build}`;
      const { page, problems } = await openDemo(chrome, server.url + query);
      try {
        const engine = await page.textContent('#engine');
        assert.equal(await page.getAttribute('body', 'data-build'), build, engine);
        assert.equal(await page.getAttribute('body', 'data-threads'), String(threads), engine);
        const call = (type, args) =>
          page.evaluate(([type, args]) => window.latebird.call(type, args), [type, args]);
        let worst = 0;
        for (const { file, metadata, tensors } of references) {
          const texts = JSON.parse(metadata.texts);
          const options = { ...optionsOf(JSON.parse(metadata.overrides)), batchSize: 5 };
          await call('loadUrl', { base: `/models/${metadata.model}`, options });
          for (const [isQuery, key] of [
            [true, 'query'],
            [false, 'document'],
          ]) {
            const list = isQuery ? texts.queries : texts.documents;
            const outputs = await call('encode', { texts: list, isQuery });
            assert.equal(outputs.length, list.length);
            outputs.forEach((out, i) => {
              const expected = tensors[`${key}.${i}`];
              assert.deepEqual([out.rows, out.dim], expected.shape, `${file} ${key} ${i}: shape`);
              const diff = maxAbsDiff(out.data, expected.values);
              assert.ok(diff <= TOLERANCE, `${build} ${file} ${key} ${i}: ${diff}`);
              worst = Math.max(worst, diff);
            });
          }
        }
        console.log(`${build}: ${engine}\n  ${references.length} references, worst |diff| ${worst.toExponential(2)}`);
        assert.deepEqual(problems, []);
      } finally {
        await page.close();
      }
    });
  }
});

test('without cross-origin isolation the package runs one thread and says why', { timeout: 120_000 }, async (t) => {
  const server = await startServer({ port: 0, isolated: false });
  t.after(() => server.close());
  const chrome = await launchChromium();
  t.after(() => chrome.close());
  const { page, problems } = await openDemo(chrome, server.url);
  const engine = await page.textContent('#engine');
  assert.equal(await page.getAttribute('body', 'data-threads'), '1', engine);
  assert.match(await page.getAttribute('body', 'data-build'), /^(simd|relaxed)$/);
  assert.match(engine, /not cross-origin isolated/);
  // Asking for threads there is a typed error naming the headers.
  const error = await page.evaluate(async () => {
    const { load } = await import('/pkg/index.js');
    try {
      await load({ threads: 2 });
      return null;
    } catch (e) {
      return { name: e.name, message: e.message };
    }
  });
  assert.equal(error?.name, 'InvalidInputError');
  assert.match(error.message, /Cross-Origin-Embedder-Policy: require-corp/);
  assert.deepEqual(problems, []);
});

test('a threaded build refuses work before its pool starts, and bad pool sizes', { timeout: 120_000 }, async (t) => {
  const server = await startServer({ port: 0 });
  t.after(() => server.close());
  const chrome = await launchChromium();
  t.after(() => chrome.close());
  const { page, problems } = await openDemo(chrome, server.url);
  const outcome = await page.evaluate(async () => {
    const m = await import('/pkg/threads/latebird_wasm.js');
    await m.default();
    const attempt = async (f) => {
      try {
        return { ok: await f() };
      } catch (e) {
        return { name: e.name, message: e.message };
      }
    };
    return {
      before: await attempt(() => m.ColBERT.fromFiles({})),
      scoreBefore: await attempt(() => m.maxsim({ rows: 1, dim: 1, data: new Float32Array([1]) }, { rows: 1, dim: 1, data: new Float32Array([1]) })),
      zero: await attempt(() => m.startThreads(0)),
      tooMany: await attempt(() => m.startThreads(1000)),
      start: await attempt(() => m.startThreads(2).then(() => m.buildInfo().threads)),
      again: await attempt(() => m.startThreads(2)),
      after: await attempt(() => m.maxsim({ rows: 1, dim: 1, data: new Float32Array([1]) }, { rows: 1, dim: 1, data: new Float32Array([1]) })),
    };
  });
  assert.equal(outcome.before.name, 'LatebirdError');
  assert.match(outcome.before.message, /start its thread pool first/);
  assert.equal(outcome.scoreBefore.name, 'LatebirdError');
  assert.equal(outcome.zero.name, 'InvalidInputError');
  assert.match(outcome.zero.message, /threads.*from 1 to 256, got 0/);
  assert.equal(outcome.tooMany.name, 'InvalidInputError');
  assert.deepEqual(outcome.start, { ok: 2 });
  assert.equal(outcome.again.name, 'InvalidInputError');
  assert.match(outcome.again.message, /already started with 2 threads/);
  assert.deepEqual(outcome.after, { ok: 1 });
  assert.deepEqual(problems, []);
});
