// Errors are real JS Errors carrying the engine's message, named by class.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPackage, modelDir, readFolder } from './helpers.mjs';

const pkg = await loadPackage();
const good = readFolder(modelDir('modernbert-v4'));
const withFile = (name, bytes) => ({ ...good, [name]: bytes });
const without = (name) => {
  const files = { ...good };
  delete files[name];
  return files;
};
const text = (s) => new TextEncoder().encode(s);

/** Asserts `fn` throws an Error named `name` whose message contains every needle. */
function throwsError(fn, name, needles) {
  let caught;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `expected ${name} (${needles.join(', ')}), nothing thrown`);
  assert.ok(caught instanceof Error, `thrown value is not an Error: ${caught}`);
  assert.equal(caught.name, name, caught.message);
  for (const needle of needles) {
    assert.ok(caught.message.includes(needle), `${JSON.stringify(caught.message)} lacks ${needle}`);
  }
  assert.ok(typeof caught.stack === 'string');
  return caught;
}

test('missing files', () => {
  for (const [file, hint] of [
    ['config.json', 'config'],
    ['modules.json', 'Transformer'],
    ['model.safetensors', 'weights'],
    ['tokenizer.json', 'tokenizer'],
    ['1_Dense/model.safetensors', 'Dense'],
  ]) {
    const e = throwsError(() => pkg.ColBERT.fromFiles(without(file)), 'ModelLoadError', [
      file,
      hint,
      'missing from the model',
    ]);
    assert.ok(e.message.startsWith(`${file}: missing from the model (`), e.message);
  }
});

test('truncated and corrupt safetensors', () => {
  const weights = good['model.safetensors'];
  const headerLength = Number(new DataView(weights.buffer, weights.byteOffset).getBigUint64(0, true));
  for (const [what, bytes] of [
    ['cut in the header', weights.subarray(0, 8 + Math.floor(headerLength / 2))],
    ['cut in the data', weights.subarray(0, weights.length - 7)],
    ['cut in the length', weights.subarray(0, 5)],
    ['empty', new Uint8Array(0)],
  ]) {
    const e = throwsError(
      () => pkg.ColBERT.fromFiles(withFile('model.safetensors', bytes)),
      'ModelLoadError',
      ['model.safetensors: ', 'not a valid safetensors file'],
    );
    assert.ok(e.message.startsWith('model.safetensors: '), `${what}: ${e.message}`);
  }
});

test('malformed JSON', () => {
  for (const file of ['config.json', 'modules.json', 'config_sentence_transformers.json', '1_Dense/config.json']) {
    throwsError(() => pkg.ColBERT.fromFiles(withFile(file, text('{"a": 1,, }'))), 'ModelLoadError', [
      `${file}: `,
      'not valid JSON',
    ]);
  }
  throwsError(() => pkg.ColBERT.fromFiles(withFile('tokenizer.json', text('{"version": '))), 'ModelLoadError', [
    'tokenizer.json: ',
    'not a valid tokenizers file',
  ]);
});

test('bad arguments are InvalidInputErrors naming the argument', () => {
  throwsError(() => pkg.ColBERT.fromFiles({}), 'InvalidInputError', ['invalid argument `files`', 'no files given']);
  throwsError(() => pkg.ColBERT.fromFiles([1, 2]), 'InvalidInputError', ['`files`', 'an array']);
  throwsError(() => pkg.ColBERT.fromFiles({ ...good, 'config.json': 'text' }), 'InvalidInputError', [
    '"config.json"',
    'expected a Uint8Array or an ArrayBuffer',
  ]);
  throwsError(() => pkg.ColBERT.fromFiles(good, { queryLenght: 4 }), 'InvalidInputError', [
    'invalid argument `queryLenght`: unknown setting',
    'expected one of queryLength, documentLength, queryPrefix, documentPrefix, doQueryExpansion, attendToExpansionTokens, skiplistWords, batchSize',
  ]);
  throwsError(() => pkg.ColBERT.fromFiles(good, { queryLength: -1 }), 'InvalidInputError', ['`queryLength`', 'is -1']);
  throwsError(() => pkg.ColBERT.fromFiles(good, { queryLength: '8' }), 'InvalidInputError', [
    '`queryLength`',
    'is the string "8"; expected an integer from 1 to 268435456',
  ]);
  throwsError(() => pkg.ColBERT.fromFiles(good, { batchSize: 0 }), 'InvalidInputError', ['`batchSize`', 'is 0']);
  throwsError(() => pkg.ColBERT.fromFiles(good, { queryLength: 100000 }), 'InvalidInputError', [
    '`queryLength`',
    'max_position_embeddings',
  ]);
  throwsError(() => pkg.ColBERT.fromFiles(good, { queryPrefix: '[NOPE]' }), 'ModelLoadError', [
    'tokenizer.json',
    '[NOPE]',
  ]);

  const model = pkg.ColBERT.fromFiles(good);
  throwsError(() => model.encode(['ok', 3], true), 'InvalidInputError', ['`texts[1]`', 'expected a string']);
  throwsError(() => model.encode('not a list', true), 'InvalidInputError', ['`texts`', 'expected an array']);
  throwsError(() => model.encode(['ok'], false, 0), 'InvalidInputError', ['`poolFactor`', 'is 0']);
  throwsError(() => model.encode(['ok'], false, 1.5), 'InvalidInputError', ['`poolFactor`', '1.5']);
  throwsError(
    () => model.encode(['a', 'b'], false, 1, () => false),
    'LatebirdError',
    ['cancelled'],
  );
  // An exception in the progress callback comes through as it is.
  const boom = new RangeError('boom');
  assert.throws(
    () =>
      model.encode(['a', 'b'], false, 1, () => {
        throw boom;
      }),
    (e) => e === boom,
  );
  // The model still works after errors.
  assert.equal(model.encode(['still fine'], true)[0].rows, model.settings.queryLength);
});

test('scoring arguments', () => {
  const m = (rows, dim, data = new Float32Array(rows * dim).fill(0.5)) => ({ rows, dim, data });
  throwsError(() => pkg.maxsim(m(2, 4), m(3, 5)), 'InvalidInputError', ['`document`', 'dim 5', 'dim 4']);
  throwsError(() => pkg.maxsim(m(2, 4), m(0, 4)), 'InvalidInputError', ['`document`', '0 rows']);
  throwsError(() => pkg.maxsim(m(2, 4, new Float32Array(7)), m(1, 4)), 'InvalidInputError', [
    '`query`',
    'holds 7 values',
  ]);
  throwsError(() => pkg.maxsim(m(1, 2, Float32Array.of(1, NaN)), m(1, 2)), 'InvalidInputError', [
    '`query`',
    'row 0, column 1 is NaN',
  ]);
  throwsError(() => pkg.maxsim({ rows: 1, dim: 2, data: [1, 2] }, m(1, 2)), 'InvalidInputError', [
    '`query.data`',
    'expected a Float32Array',
  ]);
  throwsError(() => pkg.maxsim({ rows: 1.5, dim: 2, data: new Float32Array(2) }, m(1, 2)), 'InvalidInputError', [
    '`query.rows`',
  ]);
  throwsError(() => pkg.scores([m(1, 4)], [m(1, 4), m(1, 3)]), 'InvalidInputError', ['`documents[1]`']);
  throwsError(() => pkg.scores([m(1, 4)], [m(1, 4), 'x']), 'InvalidInputError', ['`documents[1]`', 'a string']);
  throwsError(() => pkg.topK(m(1, 4), [m(1, 4)], 0), 'InvalidInputError', ['`k`', 'is 0']);
  throwsError(() => pkg.rerank([m(1, 4)], [], []), 'InvalidInputError', ['`documents`', 'one per query']);
  throwsError(() => pkg.rerank([m(1, 4)], [[m(1, 4)]], [[]]), 'InvalidInputError', ['`ids[0]`']);
  throwsError(() => pkg.pool(m(3, 4), 0), 'InvalidInputError', ['`poolFactor`', 'is 0']);
});
