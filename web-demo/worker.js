// The demo's engine thread: loads the wasm package and the model, encodes, ranks and explains
// matches, so that the page stays responsive. Requests are { id, type, ...args }; replies are
// { id, ok: true, result } or { id, ok: false, error: { name, message } }, with
// { id, progress: { stage, done, total } } messages in between.
import { load as loadEngine } from './pkg/index.js';

// The build the package picked (single- or multi-threaded, with or without relaxed SIMD).
let engine = null;
let model = null;
let modelName = '';
// The last encoded documents, reused while the document list is unchanged.
let cache = { key: null, documents: [], embeddings: [], tokens: 0 };

const now = () => performance.now();

async function fetchModel(base, id) {
  const listing = await fetch(`${base}.json`);
  if (!listing.ok) throw new Error(`${base}.json: HTTP ${listing.status} ${await listing.text()}`);
  const { name, files } = await listing.json();
  const out = {};
  let bytes = 0;
  let done = 0;
  await Promise.all(
    files.map(async (file) => {
      const response = await fetch(`${base}/${file}`);
      if (!response.ok) throw new Error(`${base}/${file}: HTTP ${response.status}`);
      out[file] = new Uint8Array(await response.arrayBuffer());
      bytes += out[file].byteLength;
      postMessage({ id, progress: { stage: 'download', done: ++done, total: files.length } });
    }),
  );
  return { name, files: out, bytes };
}

function load(name, files, options) {
  if (model) model.free();
  model = null;
  cache = { key: null, documents: [], embeddings: [], tokens: 0 };
  const start = now();
  model = engine.ColBERT.fromFiles(files, options);
  modelName = name;
  return { name, dim: model.dim, settings: model.settings, loadMs: now() - start };
}

function encode(texts, isQuery, id) {
  const start = now();
  const progress =
    id === null
      ? undefined
      : (done, total) => {
          postMessage({ id, progress: { stage: isQuery ? 'queries' : 'documents', done, total } });
        };
  const embeddings = model.encode(texts, isQuery, 1, progress);
  const ms = now() - start;
  const tokens = embeddings.reduce((n, e) => n + e.rows, 0);
  return { embeddings, ms, tokens };
}

const handlers = {
  // options: the package's load() options ({ build, threads, relaxedSimd }).
  async init({ options = {} }) {
    const start = now();
    engine = await loadEngine(options);
    return {
      ...engine.buildInfo(),
      build: engine.build,
      why: engine.why,
      startMs: now() - start,
      crossOriginIsolated: self.crossOriginIsolated,
    };
  },

  async loadUrl({ base = '/model', options }, id) {
    const start = now();
    const { name, files, bytes } = await fetchModel(base, id);
    const fetchMs = now() - start;
    return { ...load(name, files, options), fetchMs, bytes, files: Object.keys(files).length };
  },

  async loadFiles({ name, files, options }) {
    const bytes = Object.values(files).reduce((n, f) => n + f.byteLength, 0);
    const views = Object.fromEntries(Object.entries(files).map(([k, v]) => [k, new Uint8Array(v)]));
    return { ...load(name, views, options), fetchMs: 0, bytes, files: Object.keys(files).length };
  },

  async rank({ queries, documents, k = 10 }, id) {
    if (!model) throw new Error('no model loaded yet');
    const timings = {};
    const key = JSON.stringify(documents);
    if (cache.key !== key) {
      const d = encode(documents, false, id);
      cache = { key, documents, embeddings: d.embeddings, tokens: d.tokens };
      timings.documents = { ms: d.ms, texts: documents.length, tokens: d.tokens };
    } else {
      timings.documents = { ms: 0, texts: documents.length, tokens: cache.tokens, cached: true };
    }
    const q = encode(queries, true, id);
    timings.queries = { ms: q.ms, texts: queries.length, tokens: q.tokens };
    const start = now();
    const rankings = q.embeddings.map((query) =>
      engine.topK(query, cache.embeddings, Math.max(1, k)),
    );
    timings.scoring = { ms: now() - start };
    cache.queries = { texts: queries, embeddings: q.embeddings };
    return { model: modelName, rankings, timings };
  },

  // Encodes texts with the loaded model and returns the embeddings (for the tests).
  async encode({ texts, isQuery }) {
    if (!model) throw new Error('no model loaded yet');
    return model.encode(texts, isQuery);
  },

  // Encodes the same texts `repeats` times (after one warm-up run) and reports each time.
  async bench({ texts, isQuery, repeats = 3 }) {
    if (!model) throw new Error('no model loaded yet');
    model.encode(texts, isQuery);
    const runs = [];
    for (let r = 0; r < repeats; r++) {
      const { ms, tokens } = encode(texts, isQuery, null);
      runs.push({ ms, tokens, texts: texts.length });
    }
    return runs;
  },

  // For one (query, document) pair of the last ranking: the token-by-token similarities, the
  // document token each query token matched (its argmax) and the token strings.
  async explain({ query, document }) {
    const q = cache.queries?.embeddings[query];
    const d = cache.embeddings[document];
    if (!q || !d) throw new Error('rank first: no such query or document in the last ranking');
    const keptTokens = (text, isQuery) => {
      const t = model.tokenize(text, isQuery);
      return t.tokens.filter((_, i) => t.keep[i]);
    };
    const queryTokens = keptTokens(cache.queries.texts[query], true);
    const documentTokens = keptTokens(cache.documents[document], false);
    const sims = new Float32Array(q.rows * d.rows);
    const best = new Int32Array(q.rows);
    const bestScore = new Float32Array(q.rows);
    for (let i = 0; i < q.rows; i++) {
      const qi = q.data.subarray(i * q.dim, (i + 1) * q.dim);
      let arg = 0;
      let max = -Infinity;
      for (let j = 0; j < d.rows; j++) {
        const dj = d.data.subarray(j * d.dim, (j + 1) * d.dim);
        let dot = 0;
        for (let c = 0; c < q.dim; c++) dot += qi[c] * dj[c];
        sims[i * d.rows + j] = dot;
        if (dot > max) {
          max = dot;
          arg = j;
        }
      }
      best[i] = arg;
      bestScore[i] = max;
    }
    return {
      queryTokens,
      documentTokens,
      rows: q.rows,
      cols: d.rows,
      sims,
      best,
      bestScore,
      score: bestScore.reduce((a, b) => a + b, 0),
    };
  },
};

self.onmessage = async (event) => {
  const { id, type, ...args } = event.data;
  try {
    const handler = handlers[type];
    if (!handler) throw new Error(`unknown request ${type}`);
    const result = await handler(args, id);
    postMessage({ id, ok: true, result });
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    postMessage({ id, ok: false, error: { name: error.name, message: error.message } });
  }
};
