#!/usr/bin/env node
// Serves the web demo on the loopback interface, with no dependencies:
//   /            web-demo/ (index.html, main.js, worker.js, style.css)
//   /pkg/        the wasm package (crates/wasm/pkg, built by scripts/build_wasm.sh)
//   /model/      the default model folder (tests/models/minilm-colbert, or --model DIR)
//   /model.json  { name, files: [relative paths], bytes } of that folder, so the page can fetch it
//   /models.json [{ name, bytes, precision }]: every model the demo offers (the default and
//                the test models' smaller copies in target/web-models, from `latebird quantize`)
//   /models/NAME.json, /models/NAME/...  one of them, as /model.json and /model/; the test
//                fixtures (tests/fixtures/models) are served there too
//   /examples/   examples/data (queries.txt, documents.txt)
// Every response carries COOP/COEP headers (cross-origin isolation: SharedArrayBuffer for a
// threaded build) and a proper MIME type (application/wasm for streaming compilation).
//
//   node web-demo/serve.mjs [--port 8000] [--host 127.0.0.1] [--model DIR] [--not-isolated]
import { createServer } from 'node:http';
import {
  closeSync,
  createReadStream,
  existsSync,
  openSync,
  readSync,
  readdirSync,
  statSync,
} from 'node:fs';
import { basename, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = resolve(fileURLToPath(new URL('.', import.meta.url)));
const ROOT = resolve(HERE, '..');

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
};

/** The test model's smaller copies (`latebird quantize`, written by scripts/test.sh). */
const WEB_MODELS = join(ROOT, 'target', 'web-models');
/** Folders holding model folders, searched in this order for /models/NAME. */
const MODEL_ROOTS = [join(ROOT, 'tests', 'models'), WEB_MODELS, join(ROOT, 'tests', 'fixtures', 'models')];

/** The model folder NAME (a plain folder name) under MODEL_ROOTS, or null. */
function findModel(name) {
  if (!/^[A-Za-z0-9._-]+$/.test(name) || name.startsWith('.')) return null;
  for (const root of MODEL_ROOTS) {
    const dir = join(root, name);
    if (existsSync(join(dir, 'modules.json'))) return dir;
  }
  return null;
}

/** { name, files, bytes, precision } of a model folder; precision from its weights' header. */
function describeModel(dir) {
  const files = listFiles(dir);
  const bytes = files.reduce((n, f) => n + statSync(join(dir, f)).size, 0);
  let precision = 'float32';
  try {
    const header = readSafetensorsHeader(join(dir, 'model.safetensors'));
    const dtypes = new Set(Object.values(header).map((t) => t.dtype).filter(Boolean));
    if (dtypes.has('I8')) precision = 'int8';
    else if (dtypes.has('F16') && !dtypes.has('F32')) precision = 'float16';
  } catch {
    // no single model.safetensors at the top: report float32
  }
  return { name: basename(dir), files, bytes, precision };
}

function readSafetensorsHeader(path) {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(8);
    readSync(fd, head, 0, 8, 0);
    const length = Number(head.readBigUInt64LE(0));
    const json = Buffer.alloc(length);
    readSync(fd, json, 0, length, 8);
    return JSON.parse(json.toString('utf8'));
  } finally {
    closeSync(fd);
  }
}

/** The models the demo offers: the default, then its copies in target/web-models. */
function offeredModels(defaultDir) {
  const copies = existsSync(WEB_MODELS) ? readdirSync(WEB_MODELS).sort().map((n) => join(WEB_MODELS, n)) : [];
  return [resolve(defaultDir), ...copies]
    .filter((d) => existsSync(join(d, 'modules.json')))
    .map(describeModel);
}

function listFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const entry of readdirSync(d).sort()) {
      const path = join(d, entry);
      if (statSync(path).isDirectory()) walk(path);
      else out.push(relative(dir, path).split(sep).join('/'));
    }
  };
  walk(dir);
  return out;
}

/** A path inside `root` for the URL path `rest`, or null when it would leave `root`. */
function inside(root, rest) {
  const path = resolve(root, `.${sep}${decodeURIComponent(rest)}`);
  return path === root || path.startsWith(root + sep) ? path : null;
}

/**
 * Starts the server; resolves to { server, url, close() } once it listens.
 * `port` 0 picks a free port.
 */
export function startServer({
  port = 8000,
  host = '127.0.0.1',
  model = join(ROOT, 'tests', 'models', 'minilm-colbert'),
  log = false,
  // false: no COOP/COEP headers, to see how a page that is not cross-origin isolated runs.
  isolated = true,
} = {}) {
  const mounts = [
    ['/pkg/', join(ROOT, 'crates', 'wasm', 'pkg')],
    ['/model/', resolve(model)],
    ['/examples/', join(ROOT, 'examples', 'data')],
    ['/', HERE],
  ];
  const headers = {
    ...(isolated && {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    }),
    'Cross-Origin-Resource-Policy': 'same-origin',
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
  };
  const send = (res, status, body, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { ...headers, 'Content-Type': type });
    res.end(body);
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (log) console.log(req.method, url.pathname);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'only GET and HEAD\n');
      return;
    }
    if (url.pathname === '/model.json') {
      const dir = resolve(model);
      if (!existsSync(join(dir, 'modules.json'))) {
        send(res, 404, `no model folder at ${dir}: run python scripts/build_test_models.py\n`);
        return;
      }
      send(res, 200, JSON.stringify(describeModel(dir)), MIME['.json']);
      return;
    }
    if (url.pathname === '/models.json') {
      const models = offeredModels(model).map(({ name, bytes, precision }) => ({ name, bytes, precision }));
      send(res, 200, JSON.stringify(models), MIME['.json']);
      return;
    }
    let [prefix, root] = mounts.find(([p]) => url.pathname.startsWith(p));
    const named = url.pathname.match(/^\/models\/([^/]+?)(\.json|\/.*)$/);
    if (named) {
      const dir = findModel(named[1]) ?? (named[1] === basename(resolve(model)) ? resolve(model) : null);
      if (!dir) {
        send(res, 404, `no model folder ${named[1]}\n`);
        return;
      }
      if (named[2] === '.json') {
        send(res, 200, JSON.stringify(describeModel(dir)), MIME['.json']);
        return;
      }
      [prefix, root] = [`/models/${named[1]}/`, dir];
    }
    let path;
    try {
      path = inside(root, url.pathname.slice(prefix.length));
    } catch {
      path = null; // malformed percent-encoding
    }
    if (path && existsSync(path) && statSync(path).isDirectory()) path = join(path, 'index.html');
    if (!path || !existsSync(path) || !statSync(path).isFile() || basename(path) === 'serve.mjs') {
      send(res, 404, `not found: ${url.pathname}\n`);
      return;
    }
    const size = statSync(path).size;
    res.writeHead(200, {
      ...headers,
      'Content-Type': MIME[extname(path).toLowerCase()] ?? 'application/octet-stream',
      'Content-Length': size,
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    createReadStream(path).pipe(res);
  });

  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      const url = `http://${host}:${address.port}/`;
      resolvePromise({
        server,
        url,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const args = process.argv.slice(2);
  const option = (name, fallback) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
  };
  const { url } = await startServer({
    port: Number(option('--port', '8000')),
    host: option('--host', '127.0.0.1'),
    model: option('--model', join(ROOT, 'tests', 'models', 'minilm-colbert')),
    log: args.includes('--log'),
    isolated: !args.includes('--not-isolated'),
  });
  if (!existsSync(join(ROOT, 'crates', 'wasm', 'pkg', 'index.js'))) {
    console.warn('crates/wasm/pkg is not built yet: run bash scripts/build_wasm.sh');
  }
  console.log(`latebird web demo: ${url}`);
}
