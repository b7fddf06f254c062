// MaxSim scoring, reranking, top-k and pooling against PyLate (tests/fixtures/scoring).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, loadPackage, readSafetensors, list, matrix } from './helpers.mjs';

const TOLERANCE = 1e-5;
const pkg = await loadPackage();
const fixture = (name) => readSafetensors(join(ROOT, 'tests', 'fixtures', 'scoring', `${name}.safetensors`));
const MODELS = ['minilm-colbert', 'modernbert-v4'];

for (const model of MODELS) {
  test(`scores and maxsim match PyLate: ${model}`, () => {
    const { metadata, tensors } = fixture(model);
    const queries = list(tensors, 'query');
    const documents = list(tensors, 'document');
    assert.ok(queries.length > 5 && documents.length > 5);
    const ours = pkg.scores(queries, documents);
    assert.equal(ours.queries, queries.length);
    assert.equal(ours.documents, documents.length);
    assert.ok(ours.data instanceof Float32Array);
    const padded = tensors.scores.values;
    const unpadded = tensors.scores_unpadded.values;
    let worst = 0;
    let raised = 0;
    for (let q = 0; q < queries.length; q++) {
      for (let d = 0; d < documents.length; d++) {
        const i = q * documents.length + d;
        const got = ours.data[i];
        // latebird scores the real rows only, as PyLate does for a document alone.
        worst = Math.max(worst, Math.abs(got - unpadded[i]));
        // PyLate's zero padding counts 0 in the maximum: it can only raise a score.
        assert.ok(got <= padded[i] + TOLERANCE, `q${q} d${d}`);
        if (Math.abs(padded[i] - unpadded[i]) > 1e-6) raised++;
        assert.equal(pkg.maxsim(queries[q], documents[d]), got, `q${q} d${d}: maxsim vs scores`);
      }
    }
    assert.ok(worst <= TOLERANCE, `worst ${worst}`);
    assert.equal(JSON.parse(metadata.padding).pairs_raised_by_padding, raised);
    assert.deepEqual(pkg.scores([], documents), { queries: 0, documents: documents.length, data: new Float32Array(0) });
  });

  test(`rerank matches PyLate: ${model}`, () => {
    const { tensors } = fixture(model);
    const queries = list(tensors, 'query');
    const documents = list(tensors, 'document');
    const candidates = [];
    const ids = [];
    for (let i = 0; i < queries.length; i++) {
      candidates.push(Array.from(tensors[`rerank.${i}.candidates`].values, (c) => documents[c]));
      // String ids: any JS value goes through unchanged.
      ids.push(Array.from(tensors[`rerank.${i}.input_ids`].values, (v) => `doc-${v}`));
    }
    const ranked = pkg.rerank(queries, candidates, ids);
    assert.equal(ranked.length, queries.length);
    let compared = 0;
    ranked.forEach((list_, i) => {
      const expectedIds = Array.from(tensors[`rerank.${i}.ids`].values, (v) => `doc-${v}`);
      const expectedScores = tensors[`rerank.${i}.scores`].values;
      const raised = tensors[`rerank.${i}.raised_by_padding`].values;
      assert.equal(list_.length, ids[i].length);
      for (let k = 1; k < list_.length; k++) {
        assert.ok(list_[k - 1].score >= list_[k].score, `query ${i}: not sorted`);
        if (list_[k - 1].score === list_[k].score) {
          assert.ok(ids[i].indexOf(list_[k - 1].id) < ids[i].indexOf(list_[k].id), `query ${i}: tie order`);
        }
      }
      const ours = new Map(list_.map((r) => [r.id, r.score]));
      assert.equal(ours.size, ids[i].length);
      expectedIds.forEach((id, k) => {
        if (raised[k] === 0) assert.ok(Math.abs(ours.get(id) - expectedScores[k]) <= TOLERANCE, `query ${i} ${id}`);
      });
      if (raised.every((r) => r === 0)) {
        list_.forEach((r, k) => {
          if (r.id !== expectedIds[k]) {
            // Only reordered inside a group of equal PyLate scores.
            const group = expectedIds.filter((_, j) => expectedScores[j] === expectedScores[k]);
            assert.ok(group.includes(r.id), `query ${i}: position ${k}`);
          }
        });
        compared++;
      }
    });
    assert.ok(compared >= 3, `only ${compared} rankings compared`);
  });
}

test('topK is the head of the full ranking', () => {
  const { tensors } = fixture('modernbert-v4');
  const queries = list(tensors, 'query');
  const documents = list(tensors, 'document');
  const unpadded = tensors.scores_unpadded.values;
  queries.forEach((query, q) => {
    const all = pkg.topK(query, documents, documents.length + 10);
    assert.equal(all.length, documents.length);
    assert.deepEqual(pkg.topK(query, documents, 4), all.slice(0, 4));
    for (const r of all) {
      assert.equal(typeof r.id, 'number');
      assert.ok(Math.abs(r.score - unpadded[q * documents.length + r.id]) <= TOLERANCE);
    }
    for (let k = 1; k < all.length; k++) {
      const [a, b] = [all[k - 1], all[k]];
      assert.ok(a.score > b.score || (a.score === b.score && a.id < b.id));
    }
  });
  assert.deepEqual(pkg.topK(queries[0], [], 3), []);
});

/** Pooled outputs equal PyLate's as sets: protected row first, others matched one to one. */
function assertSameSet(ours, expected, what) {
  assert.deepEqual([ours.rows, ours.dim], [expected.rows, expected.dim], `${what}: shape`);
  if (ours.rows === 0) return 0;
  const row = (m, i) => m.data.subarray(i * m.dim, (i + 1) * m.dim);
  const diff = (a, b) => a.reduce((w, x, k) => Math.max(w, Math.abs(x - b[k])), 0);
  let worst = diff(row(ours, 0), row(expected, 0));
  const used = new Array(expected.rows).fill(false);
  for (let i = 1; i < ours.rows; i++) {
    let best = [-1, Infinity];
    for (let j = 1; j < expected.rows; j++) {
      if (used[j]) continue;
      const d = diff(row(ours, i), row(expected, j));
      if (d < best[1]) best = [j, d];
    }
    used[best[0]] = true;
    worst = Math.max(worst, best[1]);
  }
  assert.ok(worst <= TOLERANCE, `${what}: max abs diff ${worst}`);
  return worst;
}

test('pool matches PyLate', () => {
  let cases = 0;
  for (const model of MODELS) {
    const { tensors } = fixture(model);
    const documents = list(tensors, 'document');
    for (const factor of [2, 3]) {
      documents.forEach((document, j) => {
        const ours = pkg.pool(document, factor);
        assert.ok(ours.data instanceof Float32Array);
        assertSameSet(ours, matrix(tensors[`pool${factor}.${j}`]), `${model} document ${j} factor ${factor}`);
        cases++;
      });
    }
  }
  const { tensors } = fixture('synthetic');
  for (const [name, factors] of [
    ['ties', [2, 3, 4, 7, 13]],
    ['random', [2, 3, 5]],
  ]) {
    const input = matrix(tensors[`${name}.input`]);
    for (const factor of factors) {
      assertSameSet(pkg.pool(input, factor), matrix(tensors[`${name}.pool${factor}`]), `${name} factor ${factor}`);
      cases++;
    }
  }
  assert.ok(cases > 20);
  const input = matrix(tensors['random.input']);
  assert.deepEqual(pkg.pool(input, 1), input);
});
