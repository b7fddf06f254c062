// int8 and bfloat16 in WebAssembly: `precision` converts the linear layers at load (the
// portable kernels), stays close to float32, reports itself, and is deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, loadPackage, modelDir, readFolder } from './helpers.mjs';

const pkg = await loadPackage();
const TEXTS = ['late interaction in int8', 'a quarter of the memory', 'b'];

function minCosine(a, b) {
  let min = Infinity;
  for (let t = 0; t < a.length; t++) {
    assert.equal(a[t].rows, b[t].rows);
    const { rows, dim } = a[t];
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let c = 0; c < dim; c++) dot += a[t].data[r * dim + c] * b[t].data[r * dim + c];
      min = Math.min(min, dot);
    }
  }
  return min;
}

for (const name of ['minilm-colbert', 'modernbert-v4', 'xlm-roberta']) {
  test(`${name}: int8 at load is close to float32 and deterministic`, () => {
    const files = readFolder(modelDir(name));
    const float = pkg.ColBERT.fromFiles(files);
    const int8 = pkg.ColBERT.fromFiles(files, { precision: 'int8' });
    assert.equal(float.precision, 'float32');
    assert.equal(int8.precision, 'int8');
    assert.equal(int8.settings.precision, 'int8');
    for (const isQuery of [false, true]) {
      const a = float.encode(TEXTS, isQuery);
      const b = int8.encode(TEXTS, isQuery);
      const cosine = minCosine(a, b);
      assert.ok(cosine > 0.95 && cosine < 1, `min cosine ${cosine}`);
      assert.deepEqual(int8.encode(TEXTS, isQuery), b);
    }
    const bf16 = pkg.ColBERT.fromFiles(files, { precision: 'bfloat16' });
    assert.equal(bf16.precision, 'bfloat16');
    const cosine = minCosine(float.encode(TEXTS, false), bf16.encode(TEXTS, false));
    assert.ok(cosine > 0.99 && cosine < 1, `bfloat16 min cosine ${cosine}`);
    float.free();
    int8.free();
    bf16.free();
  });
}

// The smaller downloads: `latebird quantize` copies of the test model (scripts/test.sh writes
// them to target/web-models) load from bytes like any folder: float16 in float32 at half the
// size, int8 in int8.
test('float16 and int8 copies written by latebird quantize load in WebAssembly', () => {
  const original = readFolder(modelDir('minilm-colbert'));
  const float = pkg.ColBERT.fromFiles(original);
  const want = float.encode(TEXTS, false);
  const bytes = (files) => Object.values(files).reduce((n, f) => n + f.byteLength, 0);
  for (const [precision, maxRatio, minCos] of [
    ['float16', 0.52, 0.999],
    ['int8', 0.7, 0.95],
  ]) {
    const dir = join(ROOT, 'target', 'web-models', `minilm-colbert-${precision}`);
    assert.ok(
      existsSync(join(dir, 'model.safetensors')),
      `${dir} is missing: latebird quantize tests/models/minilm-colbert ${dir} --precision ${precision}`,
    );
    const files = readFolder(dir);
    const ratio = bytes(files) / bytes(original);
    assert.ok(ratio < maxRatio, `${precision}: ${ratio.toFixed(3)} of the original's bytes`);
    const copy = pkg.ColBERT.fromFiles(files);
    assert.equal(copy.precision, precision === 'int8' ? 'int8' : 'float32');
    const got = copy.encode(TEXTS, false);
    const cosine = minCosine(want, got);
    assert.ok(cosine > minCos && cosine < 1, `${precision}: min cosine ${cosine}`);
    console.log(`${precision} copy: ${(bytes(files) / 1e6).toFixed(1)} MB (${(100 * ratio).toFixed(0)}%), min cosine ${cosine.toFixed(6)}`);
    copy.free();
  }
  float.free();
});
