// The options go through the engine's one definition of the settings (latebird::Overrides)
// in camelCase: unknown keys list the accepted camelCase names, every error names the JS
// arguments (never the engine's snake_case names), `settings` comes from the same definition,
// and poolFactor > 1 with queries is the engine's error, as in Python, the CLI and Lambda.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPackage, modelDir, readFolder } from './helpers.mjs';

const pkg = await loadPackage();
const files = readFolder(modelDir('minilm-colbert'));
const ACCEPTED =
  'queryLength, documentLength, queryPrefix, documentPrefix, doQueryExpansion, attendToExpansionTokens, skiplistWords, batchSize, precision, device';
// The engine's names of arguments the JS API spells in camelCase.
const SNAKE = /\b(query_length|document_length|query_prefix|document_prefix|do_query_expansion|attend_to_expansion_tokens|skiplist_words|batch_size|pool_factor|protected_tokens)\b/;

function thrown(fn) {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error, `not an Error: ${e}`);
    return e;
  }
  assert.fail('nothing thrown');
}

/** The message outside backticks (inside them: keys of a model file, spelt as the file does). */
const unquoted = (message) => message.replace(/`[^`]*`/g, '``');

test('unknown option keys list the accepted camelCase names', () => {
  for (const key of ['queryLenght', 'query_length', 'devices', 'poolFactor']) {
    const e = thrown(() => pkg.ColBERT.fromFiles(files, { [key]: 4 }));
    assert.equal(e.name, 'InvalidInputError');
    assert.equal(e.message, `invalid argument \`${key}\`: unknown setting; expected one of ${ACCEPTED}`);
  }
});

test('option values are checked by the engine, naming the camelCase key', () => {
  for (const [options, needles] of [
    [{ queryLength: 0 }, ['`queryLength`: is 0; expected an integer from 1 to 268435456']],
    [{ documentLength: 2.5 }, ['`documentLength`: is 2.5, not a whole number']],
    [{ batchSize: 2 ** 40 }, ['`batchSize`: is 1099511627776; expected an integer from 1 to']],
    [{ queryPrefix: 3 }, ['`queryPrefix`: is 3; expected a string']],
    [{ doQueryExpansion: 'yes' }, ['`doQueryExpansion`: is the string "yes"; expected true or false']],
    [{ attendToExpansionTokens: {} }, ['`attendToExpansionTokens`: is an object']],
    [{ skiplistWords: ['a', 3] }, ['`skiplistWords`: has item 1 3 (a number); expected a list of strings']],
    [{ skiplistWords: 'the' }, ['`skiplistWords`: is the string "the"; expected a list of strings']],
    [{ queryLength: NaN }, ['`queryLength`: is NaN; expected a finite number']],
    [{ queryLength: () => 4 }, ['`queryLength`: is a Function; expected a number']],
    [{ precision: 'int4' }, ['`precision`: is the string "int4"; expected one of float32, bfloat16, int8']],
  ]) {
    const e = thrown(() => pkg.ColBERT.fromFiles(files, options));
    assert.equal(e.name, 'InvalidInputError', e.message);
    for (const needle of needles) assert.ok(e.message.includes(needle), `${e.message} lacks ${needle}`);
  }
  // A device WebAssembly lacks is a DeviceError naming the missing feature, never the CPU.
  for (const device of ['cuda', 'cuda:1', 'mps']) {
    const e = thrown(() => pkg.ColBERT.fromFiles(files, { device }));
    assert.equal(e.name, 'DeviceError', e.message);
    assert.match(e.message, /^device (cuda|metal):\d: this build of latebird was compiled without the `(cuda|metal)` feature/);
  }
  const e = thrown(() => pkg.ColBERT.fromFiles(files, { device: 'gpu' }));
  assert.equal(e.name, 'InvalidInputError');
  assert.ok(e.message.includes('`device`: is "gpu"; expected "cpu", "cuda"'), e.message);
  // undefined and null keep the folder's values.
  const model = pkg.ColBERT.fromFiles(files, { queryLength: undefined, skiplistWords: null });
  assert.deepEqual(model.settings, pkg.ColBERT.fromFiles(files).settings);
  model.free();
});

test('settings come from the same definition and can be given back as options', () => {
  const model = pkg.ColBERT.fromFiles(files, { queryLength: 12, skiplistWords: ['the'], batchSize: 3 });
  const settings = model.settings;
  assert.deepEqual(Object.keys(settings).sort(), ACCEPTED.split(', ').sort());
  assert.equal(settings.queryLength, 12);
  assert.deepEqual(settings.skiplistWords, ['the']);
  assert.equal(settings.batchSize, 3);
  assert.equal(settings.precision, 'float32');
  assert.equal(settings.queryPrefix, '[Q] ');
  const again = pkg.ColBERT.fromFiles(files, settings);
  assert.deepEqual(again.settings, settings);
  model.free();
  again.free();
});

test('every error of the JS API names camelCase arguments', () => {
  const model = pkg.ColBERT.fromFiles(files);
  const edited = (key, value) => {
    const name = 'config_sentence_transformers.json';
    const config = JSON.parse(new TextDecoder().decode(files[name]));
    config[key] = value;
    return { ...files, [name]: new TextEncoder().encode(JSON.stringify(config)) };
  };
  const cases = [
    [() => pkg.ColBERT.fromFiles(files, { batchSize: 0 }), 'batchSize'],
    [() => pkg.ColBERT.fromFiles(files, { queryLength: 100000 }), 'queryLength'],
    [() => pkg.ColBERT.fromFiles(files, { documentLength: 3 }), 'documentLength'],
    [() => model.encode(['a'], false, 0), 'poolFactor'],
    [() => model.encode(['a'], false, -1), 'poolFactor'],
    [() => model.encode(['a'], true, 2), 'poolFactor'],
    [() => pkg.pool({ rows: 2, dim: 2, data: new Float32Array(4) }, 0), 'poolFactor'],
  ];
  for (const [fn, argument] of cases) {
    const e = thrown(fn);
    assert.equal(e.name, 'InvalidInputError', e.message);
    assert.ok(e.message.startsWith(`invalid argument \`${argument}\`: `), e.message);
    assert.doesNotMatch(e.message, SNAKE);
  }
  // A length the model's own file sets: the file's key keeps its spelling, the hint names
  // the JS option.
  const e = thrown(() => pkg.ColBERT.fromFiles(edited('query_length', 600)));
  assert.equal(e.name, 'ModelLoadError');
  assert.ok(e.message.includes('`query_length` 600'), e.message);
  assert.ok(e.message.includes('pass queryLength to override'), e.message);
  assert.doesNotMatch(unquoted(e.message), SNAKE);
  model.free();
});

test('poolFactor > 1 with queries is the engine error every front end gives', () => {
  const model = pkg.ColBERT.fromFiles(files);
  const e = thrown(() => model.encode(['a query'], true, 2));
  assert.equal(e.name, 'InvalidInputError');
  // The same text as Python's (tests/python/test_settings.py), with the JS name.
  assert.equal(
    e.message,
    'invalid argument `poolFactor`: is 2 for queries; pooling applies to documents only and ' +
      'queries are never pooled (PyLate ignores it for queries); expected 1 for queries',
  );
  assert.equal(model.encode(['a query'], true, 1)[0].rows, model.settings.queryLength);
  const text = 'a document with several words to pool';
  assert.ok(model.encode([text], false, 2)[0].rows < model.encode([text], false)[0].rows);
  model.free();
});
