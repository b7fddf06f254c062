// int8 and bfloat16 in WebAssembly: `precision` converts the linear layers at load (the
// portable kernels), stays close to float32, reports itself, and is deterministic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPackage, modelDir, readFolder } from './helpers.mjs';

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
