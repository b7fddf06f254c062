// The demo page: UI only. Everything heavy runs in worker.js.
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ worker requests
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
const pending = new Map();
let nextId = 1;

worker.onmessage = (event) => {
  const { id, ok, result, error, progress } = event.data;
  const request = pending.get(id);
  if (!request) return;
  if (progress) {
    request.onProgress?.(progress);
    return;
  }
  pending.delete(id);
  if (ok) request.resolve(result);
  else {
    const e = new Error(error.message);
    e.name = error.name;
    request.reject(e);
  }
};
worker.onerror = (event) => {
  $('engine').textContent = `The worker failed: ${event.message}`;
  $('engine').className = 'error';
};

function call(type, args = {}, { onProgress, transfer = [] } = {}) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, onProgress });
    worker.postMessage({ id, type, ...args }, transfer);
  });
}
// For the browser test and for measuring from the console.
window.latebird = { call };

// ------------------------------------------------------------------ helpers
const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
const fmtBytes = (n) => (n > 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`);
const lines = (text) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);

function setStatus(id, text, kind = 'muted') {
  $(id).textContent = text;
  $(id).className = `status ${kind}`;
}

function showError(id, e) {
  setStatus(id, `${e.name}: ${e.message}`, 'error');
}

// ------------------------------------------------------------------ model loading
let modelLoaded = false;

function showModel(info) {
  modelLoaded = true;
  $('rank').disabled = false;
  setStatus(
    'model-status',
    `Loaded ${info.name} in ${fmtMs(info.loadMs)}` +
      (info.fetchMs ? ` (download ${fmtMs(info.fetchMs)})` : ''),
    'ok',
  );
  const s = info.settings;
  const entries = [
    ['model', info.name],
    ['files', `${info.files} (${fmtBytes(info.bytes)})`],
    ['dim', info.dim],
    ['query length', `${s.queryLength}${s.doQueryExpansion ? ', expanded' : ''}`],
    ['document length', s.documentLength],
    ['prefixes', `${JSON.stringify(s.queryPrefix)} / ${JSON.stringify(s.documentPrefix)}`],
    ['load', fmtMs(info.loadMs)],
  ];
  $('model-info').replaceChildren(
    ...entries.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = String(v);
      return [dt, dd];
    }),
  );
  $('model-info').hidden = false;
}

async function loadModel(name, base) {
  setStatus('model-status', `Downloading ${name}…`);
  try {
    const info = await call(
      'loadUrl',
      { base },
      {
        onProgress: (p) =>
          setStatus('model-status', `Downloading ${name}: file ${p.done} of ${p.total}…`),
      },
    );
    showModel(info);
  } catch (e) {
    showError('model-status', e);
  }
}

// One button per model the server offers (/models.json): the test model and its smaller
// copies written by `latebird quantize`, with their download sizes. The first keeps the id
// load-default.
async function offerModels() {
  const response = await fetch('/models.json');
  const models = response.ok ? await response.json() : [];
  const buttons = models.map((m, i) => {
    const button = document.createElement('button');
    button.id = i === 0 ? 'load-default' : `load-${m.name}`;
    button.dataset.model = m.name;
    button.textContent = `Load ${m.name} (${m.precision}, ${fmtBytes(m.bytes)})`;
    button.addEventListener('click', () =>
      loadModel(m.name, i === 0 ? '/model' : `/models/${m.name}`),
    );
    return button;
  });
  $('model-buttons').replaceChildren(...buttons);
}

async function loadFileList(fileList) {
  const files = {};
  const transfer = [];
  let name = 'model';
  for (const file of fileList) {
    const path = file.webkitRelativePath || file._path || file.name;
    name = path.includes('/') ? path.split('/')[0] : name;
    const buffer = await file.arrayBuffer();
    files[path] = buffer;
    transfer.push(buffer);
  }
  if (transfer.length === 0) return;
  setStatus('model-status', `Loading ${transfer.length} files…`);
  try {
    showModel(await call('loadFiles', { name, files }, { transfer }));
  } catch (e) {
    showError('model-status', e);
  }
}

// Dropped folders come as directory entries: walk them to get every file with its path.
async function droppedFiles(items) {
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      file._path = prefix + entry.name;
      out.push(file);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  const entries = [...items].map((item) => item.webkitGetAsEntry?.()).filter(Boolean);
  for (const entry of entries) await walk(entry, '');
  return out;
}

$('folder-input').addEventListener('change', (e) => loadFileList(e.target.files));
const zone = $('drop-zone');
zone.addEventListener('dragover', (e) => {
  e.preventDefault();
  zone.classList.add('over');
});
zone.addEventListener('dragleave', () => zone.classList.remove('over'));
zone.addEventListener('drop', async (e) => {
  e.preventDefault();
  zone.classList.remove('over');
  const files = await droppedFiles(e.dataTransfer.items);
  await loadFileList(files.length ? files : e.dataTransfer.files);
});

// ------------------------------------------------------------------ ranking
let lastRank = null;

$('load-examples').addEventListener('click', async () => {
  const [queries, documents] = await Promise.all(
    ['queries', 'documents'].map((f) => fetch(`/examples/${f}.txt`).then((r) => r.text())),
  );
  $('queries').value = lines(queries).join('\n');
  $('documents').value = lines(documents).join('\n');
});

$('rank').addEventListener('click', async () => {
  const queries = lines($('queries').value);
  const documents = lines($('documents').value);
  if (!modelLoaded) return setStatus('rank-status', 'Load a model first.', 'error');
  if (!queries.length || !documents.length) {
    return setStatus('rank-status', 'Type at least one query and one document.', 'error');
  }
  const k = Math.max(1, Number($('top-k').value) || 5);
  $('rank').disabled = true;
  setStatus('rank-status', 'Encoding…');
  try {
    const result = await call(
      'rank',
      { queries, documents, k },
      {
        onProgress: (p) =>
          setStatus('rank-status', `Encoding ${p.stage}: ${p.done} of ${p.total}…`),
      },
    );
    lastRank = { ...result, queries, documents };
    showRanking(lastRank);
    setStatus('rank-status', 'Done.', 'ok');
    if (result.rankings[0]?.length) await explain(0, result.rankings[0][0].id);
  } catch (e) {
    showError('rank-status', e);
  } finally {
    $('rank').disabled = false;
  }
});

function showTimings(t) {
  const rate = (n, ms) => (ms > 0 ? `${((1000 * n) / ms).toFixed(1)}/s` : '—');
  const parts = [
    t.documents.cached
      ? `documents: cached (${t.documents.texts} texts, ${t.documents.tokens} tokens)`
      : `documents: ${fmtMs(t.documents.ms)} for ${t.documents.texts} texts, ${t.documents.tokens} tokens ` +
        `(${rate(t.documents.texts, t.documents.ms)} docs, ${rate(t.documents.tokens, t.documents.ms)} tokens)`,
    `queries: ${fmtMs(t.queries.ms)} for ${t.queries.texts} (${rate(t.queries.texts, t.queries.ms)})`,
    `scoring: ${t.scoring.ms.toFixed(1)} ms`,
  ];
  $('timings').replaceChildren(
    ...parts.map((p) => {
      const span = document.createElement('span');
      span.textContent = p;
      return span;
    }),
  );
}

function showRanking({ rankings, timings, queries, documents }) {
  showTimings(timings);
  const blocks = rankings.map((ranking, qi) => {
    const block = document.createElement('div');
    block.className = 'query-block';
    block.dataset.query = String(qi);
    const h = document.createElement('h3');
    h.textContent = queries[qi];
    const ol = document.createElement('ol');
    const top = ranking[0]?.score || 1;
    for (const { id, score } of ranking) {
      const li = document.createElement('li');
      li.dataset.doc = String(id);
      li.dataset.score = String(score);
      li.title = 'Show the token matches';
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${Math.max(2, (100 * score) / top).toFixed(1)}%`;
      const s = document.createElement('span');
      s.className = 'score';
      s.textContent = score.toFixed(3);
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = `#${id} ${documents[id]}`;
      li.append(bar, s, text);
      li.addEventListener('click', () => explain(qi, id));
      ol.append(li);
    }
    block.append(h, ol);
    return block;
  });
  $('results').replaceChildren(...blocks);
  $('results-section').hidden = false;
}

// ------------------------------------------------------------------ token matches
const heat = (v) => {
  // Similarity in [-1, 1] to a white-to-blue colour.
  const t = Math.max(0, Math.min(1, v));
  const light = 97 - 55 * t;
  return `hsl(215 80% ${light}%)`;
};

async function explain(query, doc) {
  try {
    const x = await call('explain', { query, document: doc });
    document.querySelectorAll('li.selected').forEach((li) => li.classList.remove('selected'));
    document
      .querySelector(`.query-block[data-query="${query}"] li[data-doc="${doc}"]`)
      ?.classList.add('selected');
    $('explain-title').textContent =
      `Query “${lastRank.queries[query]}” × document #${doc}: MaxSim ${x.score.toFixed(3)} ` +
      `= the sum over ${x.rows} query tokens of their best match among ${x.cols} document tokens.`;
    showMatches(x);
    showHeatmap(x);
    $('explain-section').hidden = false;
  } catch (e) {
    $('explain-title').textContent = `${e.name}: ${e.message}`;
  }
}

function showMatches(x) {
  const rows = [];
  for (let i = 0; i < x.rows; i++) {
    const row = document.createElement('div');
    row.className = 'match';
    const q = document.createElement('span');
    q.className = 'token q';
    q.textContent = x.queryTokens[i] ?? `q${i}`;
    const arrow = document.createElement('span');
    arrow.className = 'arrow';
    arrow.textContent = '→';
    const d = document.createElement('span');
    d.className = 'token d';
    d.textContent = `${x.documentTokens[x.best[i]] ?? ''} (#${x.best[i]})`;
    d.style.background = heat(x.bestScore[i]);
    const s = document.createElement('span');
    s.className = 'muted';
    s.textContent = x.bestScore[i].toFixed(3);
    row.append(q, arrow, d, s);
    rows.push(row);
  }
  $('matches').replaceChildren(...rows);
}

function showHeatmap(x) {
  const table = document.createElement('table');
  const head = document.createElement('tr');
  head.append(document.createElement('th'));
  for (let j = 0; j < x.cols; j++) {
    const th = document.createElement('th');
    th.className = 'col';
    const span = document.createElement('span');
    span.textContent = x.documentTokens[j] ?? String(j);
    th.append(span);
    head.append(th);
  }
  table.append(head);
  for (let i = 0; i < x.rows; i++) {
    const tr = document.createElement('tr');
    const th = document.createElement('th');
    th.textContent = x.queryTokens[i] ?? `q${i}`;
    tr.append(th);
    for (let j = 0; j < x.cols; j++) {
      const td = document.createElement('td');
      const v = x.sims[i * x.cols + j];
      td.style.background = heat(v);
      td.title = `${x.queryTokens[i]} × ${x.documentTokens[j]}: ${v.toFixed(3)}`;
      if (x.best[i] === j) td.className = 'best';
      tr.append(td);
    }
    table.append(tr);
  }
  $('heatmap').replaceChildren(table);
}

// ------------------------------------------------------------------ start
// The page's query string picks the build as the package's load() options do:
// ?build=simd|relaxed|threads|threads-relaxed, ?threads=N (1: single-threaded),
// ?relaxedSimd=false. By default the package picks the fastest this browser can run.
function loadOptions() {
  const params = new URLSearchParams(location.search);
  const options = {};
  if (params.has('build')) options.build = params.get('build');
  if (params.has('threads')) {
    const t = params.get('threads');
    options.threads = t === 'auto' ? 'auto' : t === 'false' ? false : Number(t);
  }
  if (params.has('relaxedSimd')) options.relaxedSimd = params.get('relaxedSimd') !== 'false';
  return options;
}

call('init', { options: loadOptions() })
  .then((info) => {
    const threads =
      info.threads > 1 ? `${info.threads} threads` : info.multiThreaded ? '1 thread' : 'single-threaded';
    $('engine').textContent =
      `latebird ${info.version}: the ${info.build} build (WebAssembly SIMD` +
      `${info.relaxedSimd ? ' with relaxed fused multiply-add' : ''}, ${threads}) ready in a Web Worker` +
      ` in ${fmtMs(info.startMs)}; ${info.why}` +
      (info.why.includes('isolated')
        ? '.'
        : `${info.crossOriginIsolated ? '; cross-origin isolated' : '; not cross-origin isolated'}.`);
    document.body.dataset.build = info.build;
    document.body.dataset.threads = String(info.threads);
    return offerModels();
  })
  .then(() => {
    document.body.dataset.ready = 'true';
  })
  .catch((e) => {
    $('engine').textContent = `The engine failed to start: ${e.name}: ${e.message}`;
    $('engine').className = 'error';
  });
