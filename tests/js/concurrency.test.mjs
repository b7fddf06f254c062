// Interleaving and cancellation in the wasm package under Node: an encode stopped in the middle
// (onProgress returning false, onProgress throwing), an encode run from inside another one's
// onProgress, and instances in worker threads encoding at the same time all leave the outputs
// bitwise equal to a fresh model's. Only equality is asserted, never time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BUILD_DIR, ROOT, WASM_PATH, loadPackage, modelDir, readFolder } from './helpers.mjs';

const pkg = await loadPackage();
const minilm = readFolder(modelDir('minilm-colbert'));

const WORDS = ['documents.txt', 'queries.txt']
  .map((f) => readFileSync(join(ROOT, 'examples', 'data', f), 'utf8'))
  .join(' ')
  .split(/\s+/)
  .filter(Boolean);

/** `count` texts of 1 to 24 words from the example data, a deterministic function of `seed`. */
function texts(count, seed) {
  let a = seed >>> 0;
  const rand = () => {
    a = (Math.imul(a, 1103515245) + 12345) >>> 0;
    return a / 4294967296;
  };
  return Array.from({ length: count }, () =>
    Array.from({ length: 1 + Math.floor(rand() * 24) }, () => WORDS[Math.floor(rand() * WORDS.length)]).join(' '),
  );
}

const bytes = (f32) => Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength);

/** Asserts two encode results are bitwise equal. */
function assertSame(got, want, what) {
  assert.equal(got.length, want.length, `${what}: count`);
  for (let i = 0; i < want.length; i++) {
    assert.equal(got[i].rows, want[i].rows, `${what}[${i}]: rows`);
    assert.equal(got[i].dim, want[i].dim, `${what}[${i}]: dim`);
    assert.ok(bytes(got[i].data).equals(bytes(want[i].data)), `${what}[${i}]: values differ`);
  }
}

// One fresh model for the expected outputs, used for nothing else.
const fresh = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
const DOCS = texts(20, 1);
const QUERIES = texts(6, 2);
const expectedDocs = fresh.encode(DOCS, false);
const expectedQueries = fresh.encode(QUERIES, true);
const expectedPooled = fresh.encode(DOCS, false, 2);

/** The model gives the fresh model's outputs. */
function assertAsGoodAsNew(model) {
  assertSame(model.encode(DOCS, false), expectedDocs, 'documents');
  assertSame(model.encode(QUERIES, true), expectedQueries, 'queries');
  assertSame(model.encode(DOCS, false, 2), expectedPooled, 'pooled documents');
}

test('onProgress returning false in the middle throws; the model then gives a fresh model\'s outputs', () => {
  const model = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
  try {
    for (const stopAt of [2, 10, 18]) {
      const seen = [];
      assert.throws(
        () =>
          model.encode(DOCS, false, 1, (done, total) => {
            seen.push([done, total]);
            return done < stopAt;
          }),
        (e) => e instanceof Error && e.name === 'LatebirdError' && /cancelled/.test(e.message),
      );
      // Stopped right after the batch that returned false: no later batch ran.
      assert.deepEqual(seen.at(-1), [stopAt, DOCS.length]);
      assert.equal(seen.length, stopAt / 2);
      assertAsGoodAsNew(model);
    }
  } finally {
    model.free();
  }
});

test('onProgress throwing in the middle surfaces that error; the model is unharmed', () => {
  const model = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
  try {
    for (const thrown of [new TypeError('bad progress'), 'a string', { code: 7 }]) {
      let calls = 0;
      let caught;
      try {
        model.encode(QUERIES, true, 1, () => {
          calls += 1;
          if (calls === 2) throw thrown;
        });
      } catch (e) {
        caught = e;
      }
      assert.equal(caught, thrown, 'the callback\'s own exception comes through');
      assert.equal(calls, 2);
      assertAsGoodAsNew(model);
    }
  } finally {
    model.free();
  }
});

test('encodes run, stopped and failed from inside another encode\'s onProgress leave both right', () => {
  const model = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
  const other = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
  try {
    const inner = [];
    const outer = model.encode(DOCS, false, 1, (done) => {
      if (done === 2) inner.push(['queries', model.encode(QUERIES, true)]);
      if (done === 4) inner.push(['pooled', model.encode(DOCS, false, 2)]);
      if (done === 6) {
        assert.throws(() => model.encode(DOCS, false, 1, (d) => d < 4), /cancelled/);
        inner.push(['stopped', null]);
      }
      if (done === 8) {
        assert.throws(() => model.encode(QUERIES, true, 1, () => {
          throw new RangeError('inner');
        }), RangeError);
        inner.push(['failed', null]);
      }
      // A second model, itself cancelled from the inside of its own callback's nested call.
      if (done === 10) {
        const nested = other.encode(QUERIES, true, 1, (d) => {
          if (d === 2) assert.throws(() => other.encode(DOCS, false, 1, () => false), /cancelled/);
        });
        inner.push(['other', nested]);
      }
      return true;
    });
    assertSame(outer, expectedDocs, 'outer encode');
    assert.deepEqual(inner.map(([name]) => name), ['queries', 'pooled', 'stopped', 'failed', 'other']);
    assertSame(inner[0][1], expectedQueries, 'nested queries');
    assertSame(inner[1][1], expectedPooled, 'nested pooled documents');
    assertSame(inner[4][1], expectedQueries, 'other model, nested');
    assertAsGoodAsNew(model);
    assertAsGoodAsNew(other);
  } finally {
    model.free();
    other.free();
  }
});

test('instances in 4 worker threads encoding at once give the single-threaded outputs', async () => {
  // wasm memory is per instance (the build has no threads), so each worker instantiates the
  // module; they encode at the same time, each its own texts, several rounds.
  const module = new WebAssembly.Module(readFileSync(WASM_PATH));
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const pkg = await import(workerData.glue);
      pkg.initSync({ module: workerData.module });
      const model = pkg.ColBERT.fromFiles(workerData.files, { batchSize: 2 });
      const rounds = [];
      for (let r = 0; r < 3; r++) rounds.push(model.encode(workerData.texts, workerData.isQuery));
      model.free();
      parentPort.postMessage(rounds);
    })().catch((e) => { throw e; });
  `;
  const jobs = Array.from({ length: 4 }, (_, i) => ({ texts: texts(8, 100 + i), isQuery: i % 2 === 1 }));
  const results = await Promise.all(
    jobs.map(
      (job) =>
        new Promise((resolve, reject) => {
          const worker = new Worker(source, {
            eval: true,
            workerData: { glue: join(BUILD_DIR, 'latebird_wasm.js'), module, files: minilm, ...job },
          });
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.once('exit', (code) => code !== 0 && reject(new Error(`worker exited with ${code}`)));
        }),
    ),
  );
  jobs.forEach((job, i) => {
    const want = fresh.encode(job.texts, job.isQuery);
    results[i].forEach((got, r) => assertSame(got, want, `worker ${i} round ${r}`));
  });
});
