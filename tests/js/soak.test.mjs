// Soak and leak tests of the wasm package under Node: the module's memory stops growing after
// a warm-up over many encode calls, many fromFiles/free cycles and many stopped encodes, and
// free() gives a model's memory back to the module's allocator.
//
// WebAssembly memory never shrinks, so "flat" means: after the warm-up (the first fifth of
// the run), memory.buffer.byteLength grows by at most the bound. Only memory is asserted,
// never time. CI runs 1,000 encode calls and 20 cycles; the full-size run (10,000 calls, 200
// cycles) prints its figures:
//
//   LATEBIRD_SOAK_FULL=1 node tests/js/soak.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_DIR, ROOT, WASM_PATH, modelDir, readFolder } from './helpers.mjs';

const FULL = process.env.LATEBIRD_SOAK_FULL === '1';
// wasm runs on one thread, about 3 times slower than the native build: CI runs fewer calls
// than the Python soak, still enough for a per-call leak to break the bound.
const ENCODE_CALLS = FULL ? 10000 : 1000;
const CYCLES = FULL ? 200 : 20;
const STOPPED = FULL ? 500 : 100;
const MiB = 1 << 20;
// Growth allowed after the warm-up. Measured: none in the CI run; in the full run one step of
// 1.5 MiB just after the warm-up (a new high-water mark of the allocator, at call ~2,300),
// then none up to call 10,000. A leak of 0.5 KiB a call breaks the bound in the full run; of
// what each call returns (11 KiB on average here), in the CI run (800 measured calls).
const ENCODE_BOUND = 4 * MiB;
// fromFiles/free: at most this fraction of one model's weights, whatever the cycle count (one
// leaked minilm model is at least its 87 MiB of file bytes copied into wasm memory).
const CYCLE_BOUND_MODELS = 0.25;

const wasmPath = WASM_PATH;
const pkg = await import(join(BUILD_DIR, 'latebird_wasm.js'));
// initSync returns the instance's exports, among them its memory.
const { memory } = pkg.initSync({ module: readFileSync(wasmPath) });
const wasmBytes = () => memory.buffer.byteLength;

const minilmDir = modelDir('minilm-colbert');
const minilm = readFolder(minilmDir);
const weightBytes = Object.keys(minilm)
  .filter((name) => name.endsWith('.safetensors'))
  .reduce((sum, name) => sum + statSync(join(minilmDir, name)).size, 0);

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = ['documents.txt', 'queries.txt']
  .map((f) => readFileSync(join(ROOT, 'examples', 'data', f), 'utf8'))
  .join(' ')
  .split(/\s+/)
  .filter(Boolean);

/** `count` short texts of 1 to `longest` words from the example data, deterministic. */
function texts(count, seed, longest = 12) {
  const rand = random(seed);
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  return Array.from({ length: count }, () =>
    Array.from({ length: int(1, longest) }, () => WORDS[int(0, WORDS.length - 1)]).join(' '),
  );
}

/** Memory at the start, after the warm-up, at the end; throws as soon as the growth since the
 * warm-up exceeds the bound (so that a leak stops before it exhausts the 4 GiB address space). */
class Tracker {
  constructor(warmup, bound, what) {
    Object.assign(this, { warmup, bound, what, start: wasmBytes(), warm: null });
    this.end = this.start;
  }
  sample(i) {
    const now = wasmBytes();
    this.end = now;
    if (i + 1 === this.warmup) this.warm = now;
    else if (this.warm !== null) {
      assert.ok(
        now - this.warm <= this.bound,
        `${this.what}: wasm memory grew by ${((now - this.warm) / MiB).toFixed(1)} MiB after the ` +
          `warm-up (at ${i + 1}), more than the bound of ${(this.bound / MiB).toFixed(1)} MiB: ` +
          `${(this.warm / MiB).toFixed(1)} -> ${(now / MiB).toFixed(1)} MiB`,
      );
    }
  }
  report(name, extra) {
    const mib = (v) => `${(v / MiB).toFixed(1)} MiB`;
    const parts = [
      `wasm memory start ${mib(this.start)}`,
      `after warm-up ${mib(this.warm)}`,
      `end ${mib(this.end)}`,
      `drift ${mib(this.end - this.warm)}`,
      `bound ${mib(this.bound)}`,
      `process RSS ${mib(process.memoryUsage().rss)}`,
      ...Object.entries(extra).map(([k, v]) => `${k} ${v}`),
    ];
    console.log(`[soak] ${name}: ${parts.join(', ')}`);
  }
}

test(`${ENCODE_CALLS} encode calls keep wasm memory flat`, () => {
  const model = pkg.ColBERT.fromFiles(minilm);
  try {
    // Mostly short texts, a few long ones (larger activations, another allocation size).
    const pool = [...texts(480, 1), ...texts(32, 5, 150)];
    const rand = random(2);
    const samples = 50;
    const every = Math.floor(ENCODE_CALLS / samples);
    const tracker = new Tracker(samples / 5, ENCODE_BOUND, 'encode calls');
    let rows = 0;
    const started = performance.now();
    for (let call = 0; call < ENCODE_CALLS; call++) {
      // One text a call, three every tenth call; a query every third call (32 tokens each,
      // the expensive kind), documents otherwise, pooled or not.
      const n = call % 10 === 0 ? 3 : 1;
      const batch = Array.from({ length: n }, () => pool[Math.floor(rand() * pool.length)]);
      const out =
        call % 3 === 0 ? model.encode(batch, true) : model.encode(batch, false, 1 + Math.floor(rand() * 2));
      for (const e of out) rows += e.rows;
      if (call % every === every - 1) tracker.sample(Math.floor(call / every));
    }
    const seconds = (performance.now() - started) / 1000;
    tracker.report(`${ENCODE_CALLS} encode calls (${rows} rows)`, {
      seconds: seconds.toFixed(1),
      'calls/s': (ENCODE_CALLS / seconds).toFixed(1),
    });
  } finally {
    model.free();
  }
});

test(`${CYCLES} fromFiles/free cycles give each model's memory back`, () => {
  // The leak test: were free() not to release a model, each cycle would add at least its
  // weights (copied into wasm memory), and the bound of a quarter of that would fail on the
  // first cycle after the warm-up.
  const text = texts(1, 3);
  const warmup = Math.max(CYCLES / 5, 2);
  const tracker = new Tracker(warmup, Math.floor(CYCLE_BOUND_MODELS * weightBytes), 'fromFiles/free');
  const started = performance.now();
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const model = pkg.ColBERT.fromFiles(minilm);
    model.encode(text, false);
    model.free();
    tracker.sample(cycle);
  }
  const seconds = (performance.now() - started) / 1000;
  tracker.report(`${CYCLES} fromFiles/free cycles`, {
    weights: `${(weightBytes / MiB).toFixed(1)} MiB`,
    seconds: seconds.toFixed(1),
    'cycles/s': (CYCLES / seconds).toFixed(2),
  });
});

test('free() called from the model\'s own onProgress is refused, and the model is released after the encode', () => {
  // wasm-bindgen's free() of an object that a running call borrows throws; the object is then
  // dropped when that call returns. Each cycle would leak a model if it were not.
  const batch = texts(6, 5);
  const reference = pkg.ColBERT.fromFiles(minilm);
  const want = reference.encode(batch, false);
  reference.free();
  const cycles = 10;
  const tracker = new Tracker(2, Math.floor(CYCLE_BOUND_MODELS * weightBytes), 'free() during encode');
  for (let cycle = 0; cycle < cycles; cycle++) {
    const model = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
    let refused = null;
    const out = model.encode(batch, false, 1, (done) => {
      if (done === 2) {
        try {
          model.free();
        } catch (e) {
          refused = e;
        }
      }
    });
    assert.ok(refused instanceof Error, 'free() during the model\'s own encode should throw');
    assert.equal(out.length, want.length);
    out.forEach((e, i) => assert.deepEqual(e, want[i]));
    // The JS object gave up its pointer: later use is an error, not a use after free.
    assert.throws(() => model.encode(batch, false));
    tracker.sample(cycle);
  }
  tracker.report(`${cycles} models freed during their own encode`, {});
});

test(`${STOPPED} encodes stopped midway keep wasm memory flat`, () => {
  // Half stopped by onProgress returning false, half by onProgress throwing: each leaves
  // through an error path, which must free what the call had allocated.
  const model = pkg.ColBERT.fromFiles(minilm, { batchSize: 2 });
  try {
    const pool = texts(64, 4);
    const samples = 50;
    const every = STOPPED / samples;
    const tracker = new Tracker(samples / 5, ENCODE_BOUND, 'stopped encodes');
    const boom = new Error('boom');
    const started = performance.now();
    for (let call = 0; call < STOPPED; call++) {
      const batch = pool.slice(call % 32, (call % 32) + 8);
      const stopAt = 2 + (call % 2) * 2;
      const onProgress =
        call % 2
          ? (done) => done < stopAt
          : (done) => {
              if (done >= stopAt) throw boom;
            };
      const isQuery = call % 8 < 2; // queries are the expensive kind (32 tokens each)
      assert.throws(() => model.encode(batch, isQuery, 1, onProgress), call % 2 ? /cancelled/ : boom);
      if (call % every === every - 1) tracker.sample(Math.floor(call / every));
    }
    const seconds = (performance.now() - started) / 1000;
    tracker.report(`${STOPPED} stopped encodes`, { seconds: seconds.toFixed(1) });
  } finally {
    model.free();
  }
});
