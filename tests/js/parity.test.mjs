// The wasm package's embeddings equal PyLate's committed references (tests/fixtures/references).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT,
  loadPackage,
  modelDir,
  readFolder,
  readSafetensors,
  maxAbsDiff,
  optionsOf,
} from './helpers.mjs';

const TOLERANCE = 1e-5;
const pkg = await loadPackage();
const referenceDir = join(ROOT, 'tests', 'fixtures', 'references');
const references = readdirSync(referenceDir)
  .filter((f) => f.endsWith('.safetensors'))
  .sort();
const folders = new Map();
const filesOf = (name) => {
  if (!folders.has(name)) folders.set(name, readFolder(modelDir(name)));
  return folders.get(name);
};

test('references cover BERT, both ModernBERT config dialects and XLM-RoBERTa', () => {
  const models = new Set(references.map((f) => f.split('__')[0]));
  for (const name of ['minilm-colbert', 'modernbert-v4', 'modernbert-v5', 'xlm-roberta']) {
    assert.ok(models.has(name), `no reference for ${name}`);
  }
});

for (const file of references) {
  test(`embeddings and token ids match PyLate: ${file}`, () => {
    const { metadata, tensors } = readSafetensors(join(referenceDir, file));
    const texts = JSON.parse(metadata.texts);
    const options = { ...optionsOf(JSON.parse(metadata.overrides)), batchSize: 5 };
    const model = pkg.ColBERT.fromFiles(filesOf(metadata.model), options);
    try {
      let worst = 0;
      for (const [isQuery, key] of [
        [true, 'query'],
        [false, 'document'],
      ]) {
        const list = isQuery ? texts.queries : texts.documents;
        const outputs = model.encode(list, isQuery);
        assert.equal(outputs.length, list.length);
        outputs.forEach((out, i) => {
          const expected = tensors[`${key}.${i}`];
          assert.deepEqual([out.rows, out.dim], expected.shape, `${key} ${i}: shape`);
          assert.ok(out.data instanceof Float32Array);
          const diff = maxAbsDiff(out.data, expected.values);
          assert.ok(diff <= TOLERANCE, `${key} ${i} (${JSON.stringify(list[i])}): ${diff}`);
          worst = Math.max(worst, diff);

          const tokens = model.tokenize(list[i], isQuery);
          assert.deepEqual(Array.from(tokens.ids), Array.from(tensors[`${key}_ids.${i}`].values));
          assert.deepEqual(
            Array.from(tokens.attention),
            Array.from(tensors[`${key}_mask.${i}`].values),
          );
          assert.equal(
            tokens.keep.reduce((a, b) => a + b, 0),
            out.rows,
            `${key} ${i}: kept positions vs rows`,
          );
          assert.equal(tokens.tokens.length, tokens.ids.length);
        });
      }
      console.log(`${file}: worst |diff| ${worst.toExponential(2)}`);
    } finally {
      model.free();
    }
  });
}

test('files as a Map, as ArrayBuffers and under a top folder load the same model', () => {
  const files = filesOf('modernbert-v4');
  const text = ['A small test sentence about lighthouses.'];
  const base = pkg.ColBERT.fromFiles(files).encode(text, false)[0];
  const variants = [
    new Map(Object.entries(files)),
    Object.fromEntries(
      Object.entries(files).map(([k, v]) => [k, v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength)]),
    ),
    Object.fromEntries(Object.entries(files).map(([k, v]) => [`my-model/${k}`, v])),
  ];
  for (const variant of variants) {
    const out = pkg.ColBERT.fromFiles(variant).encode(text, false)[0];
    assert.deepEqual([out.rows, out.dim], [base.rows, base.dim]);
    assert.deepEqual(out.data, base.data);
  }
});

test('settings, dim and options', () => {
  const model = pkg.ColBERT.fromFiles(filesOf('minilm-colbert'), {
    queryLength: 16,
    documentLength: 24,
    queryPrefix: '',
    skiplistWords: ['the'],
    batchSize: 3,
  });
  assert.equal(model.dim, 128);
  const s = model.settings;
  assert.equal(s.queryLength, 16);
  assert.equal(s.documentLength, 24);
  assert.equal(s.queryPrefix, '');
  assert.equal(s.documentPrefix, '[D] ');
  assert.equal(s.doQueryExpansion, true);
  assert.equal(s.attendToExpansionTokens, false);
  assert.deepEqual(s.skiplistWords, ['the']);
  assert.equal(s.batchSize, 3);
  assert.equal(model.encode(['hello'], true)[0].rows, 16);
  const [doc] = model.encode(['the cat and the dog'], false);
  const t = model.tokenize('the cat and the dog', false);
  assert.deepEqual(t.tokens, ['[CLS]', '[D] ', 'the', 'cat', 'and', 'the', 'dog', '[SEP]']);
  assert.deepEqual(Array.from(t.keep), [1, 1, 0, 1, 1, 0, 1, 1]);
  assert.equal(doc.rows, 6);
});

test('encode with poolFactor equals pool of encode; progress is reported', () => {
  const model = pkg.ColBERT.fromFiles(filesOf('modernbert-v4'), { batchSize: 2 });
  const docs = [
    'The lighthouse keeper on the northern island kept a logbook for forty years.',
    'Sourdough baking is a slow negotiation between flour, water, salt and time.',
    'Paris is the capital of France.',
  ];
  const calls = [];
  const plain = model.encode(docs, false, 1, (done, total) => {
    calls.push([done, total]);
  });
  assert.deepEqual(calls.at(-1), [3, 3]);
  assert.ok(calls.length >= 2, `progress called ${calls.length} times`);
  const pooled = model.encode(docs, false, 2);
  pooled.forEach((p, i) => {
    const expected = pkg.pool(plain[i], 2);
    assert.deepEqual([p.rows, p.dim], [expected.rows, expected.dim]);
    assert.deepEqual(p.data, expected.data);
    assert.ok(p.rows < plain[i].rows || plain[i].rows <= 2);
  });
  // Queries are never pooled: poolFactor 1 keeps every row, more is an InvalidInputError.
  const q = model.encode(['a query'], true, 1)[0];
  assert.equal(q.rows, model.settings.queryLength);
  assert.throws(
    () => model.encode(['a query'], true, 3),
    (e) => e.name === 'InvalidInputError' && e.message.includes('queries are never pooled'),
  );
});
