// Hostile numbers in every numeric argument of the JS API (negative, fractional, NaN,
// infinite, beyond 32 bits, not numbers at all) are InvalidInputErrors naming the argument;
// a panic inside the engine is a LatebirdError, never a trap or a dead process. This file
// runs in a process of its own (node --test), so the instance the panic test spoils is its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPackage, modelDir, readFolder } from './helpers.mjs';

const pkg = await loadPackage();
const files = readFolder(modelDir('modernbert-v4'));
const BAD = [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300, 'three', {}, [], true];
const m = (rows, dim) => ({ rows, dim, data: new Float32Array(rows * dim).fill(0.25) });

function throwsInvalid(fn, argument, label) {
  let caught;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `${label}: expected an InvalidInputError, got ${caught}`);
  assert.equal(caught.name, 'InvalidInputError', `${label}: ${caught.message}`);
  assert.ok(caught.message.includes(`\`${argument}\``), `${label}: ${caught.message}`);
}

test('model options', () => {
  for (const value of BAD) {
    for (const [key, name] of [
      ['queryLength', 'queryLength'],
      ['documentLength', 'documentLength'],
      ['batchSize', 'batchSize'],
    ]) {
      throwsInvalid(() => pkg.ColBERT.fromFiles(files, { [key]: value }), name, `${key}=${String(value)}`);
    }
  }
  // Whole numbers that no model can take are named too.
  throwsInvalid(() => pkg.ColBERT.fromFiles(files, { documentLength: 2 ** 32 - 1 }), 'documentLength', 'huge');
  throwsInvalid(() => pkg.ColBERT.fromFiles(files, { documentLength: 100000 }), 'documentLength', 'too long');
  throwsInvalid(() => pkg.ColBERT.fromFiles(files, { batchSize: 0 }), 'batchSize', 'zero');
});

test('encode, topK, pool, matrices', () => {
  const model = pkg.ColBERT.fromFiles(files);
  for (const value of [-1, 1.5, NaN, Infinity, 2 ** 53, 1e300, {}, 'x']) {
    throwsInvalid(() => model.encode(['a text'], false, value), 'poolFactor', `poolFactor=${String(value)}`);
    throwsInvalid(() => pkg.topK(m(1, 4), [m(1, 4)], value), 'k', `k=${String(value)}`);
    throwsInvalid(() => pkg.pool(m(3, 4), value), 'poolFactor', `pool=${String(value)}`);
    throwsInvalid(
      () => pkg.maxsim({ rows: value, dim: 4, data: new Float32Array(4) }, m(1, 4)),
      'query.rows',
      `rows=${String(value)}`,
    );
    throwsInvalid(
      () => pkg.maxsim(m(1, 4), { rows: 1, dim: value, data: new Float32Array(4) }),
      'document.dim',
      `dim=${String(value)}`,
    );
  }
  // rows * dim beyond the data, and products that overflow 32 bits, are shape errors.
  throwsInvalid(() => pkg.maxsim({ rows: 65536, dim: 65536, data: new Float32Array(4) }, m(1, 4)), 'query', 'product');
  // Huge but meaningful: k beyond the candidates, a pool factor that leaves one cluster.
  assert.equal(pkg.topK(m(1, 4), [m(1, 4), m(2, 4)], 2 ** 32 - 1).length, 2);
  assert.equal(pkg.pool(m(5, 4), 2 ** 32 - 1).rows, 2);
  const big = { rows: 1, dim: 2, data: Float32Array.of(1e20, 1e20) };
  throwsInvalid(() => pkg.maxsim(big, big), 'document', 'overflow');
  // The model is unharmed by all of this.
  assert.equal(model.encode(['still fine'], true)[0].rows, model.settings.queryLength);
  model.free();
});

test('texts with lone surrogates are refused, not silently altered', () => {
  const model = pkg.ColBERT.fromFiles(files);
  for (const text of ['\ud800', 'ok \udfff then', '\ud83d']) {
    throwsInvalid(() => model.encode(['fine', text], false), 'texts[1]', JSON.stringify(text));
    throwsInvalid(() => pkg.ColBERT.fromFiles(files, { queryPrefix: text }), 'queryPrefix', 'prefix');
  }
  // A well-formed astral character is fine.
  assert.equal(model.encode(['bees \ud83d\udc1d'], false).length, 1);
  model.free();
});

test('a panic is a LatebirdError, then the instance refuses calls with a clear error', () => {
  let caught;
  try {
    pkg._panicForTests('injected for the test');
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof Error, `expected an Error, got ${caught}`);
  assert.equal(caught.name, 'LatebirdError');
  assert.match(caught.message, /internal error: panic: injected for the test/);
  assert.match(caught.message, /please report/);
  assert.throws(
    () => pkg.ColBERT.fromFiles(files),
    (e) => e instanceof Error && e.name === 'LatebirdError' && /instantiate the module again/.test(e.message),
  );
  assert.throws(
    () => pkg.maxsim(m(1, 4), m(1, 4)),
    (e) => e.name === 'LatebirdError',
  );
});
