// Shared helpers of the JS tests: the wasm package (Node), model folders, safetensors files.
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative, dirname, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const PKG = join(ROOT, 'crates', 'wasm', 'pkg');
/** The single-threaded build the Node tests run: `simd` unless LATEBIRD_WASM_BUILD names
 * another (`relaxed` needs a Node whose V8 runs relaxed SIMD). */
export const BUILD = process.env.LATEBIRD_WASM_BUILD ?? 'simd';
export const BUILD_DIR = join(PKG, BUILD);
export const WASM_PATH = join(BUILD_DIR, 'latebird_wasm_bg.wasm');

/** The build's API, initialised synchronously from its .wasm file. */
export async function loadPackage() {
  if (!existsSync(WASM_PATH)) {
    throw new Error(`${WASM_PATH} is missing: run bash scripts/build_wasm.sh first`);
  }
  const pkg = await import(join(BUILD_DIR, 'latebird_wasm.js'));
  pkg.initSync({ module: readFileSync(WASM_PATH) });
  const info = pkg.buildInfo();
  if (info.multiThreaded) throw new Error(`${BUILD} is a multi-threaded build: Node runs the others`);
  return pkg;
}

/** A model folder by name: committed fixtures first, then the ones the build script makes. */
export function modelDir(name) {
  for (const base of ['fixtures/models', 'models']) {
    const dir = join(ROOT, 'tests', base, name);
    if (existsSync(join(dir, 'modules.json'))) return dir;
  }
  throw new Error(
    `test model ${name} not found under tests/fixtures/models or tests/models; ` +
      'build it with `python scripts/build_test_models.py`',
  );
}

/** Every file of a folder, as { relative/name: Uint8Array }. */
export function readFolder(dir) {
  const files = {};
  const walk = (d) => {
    for (const entry of readdirSync(d)) {
      const path = join(d, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files[relative(dir, path).split(sep).join('/')] = new Uint8Array(readFileSync(path));
    }
  };
  walk(dir);
  return files;
}

const DTYPES = {
  F32: [4, (v, o) => v.getFloat32(o, true)],
  F64: [8, (v, o) => v.getFloat64(o, true)],
  I64: [8, (v, o) => Number(v.getBigInt64(o, true))],
  I32: [4, (v, o) => v.getInt32(o, true)],
};

/**
 * Parses a safetensors file: 8-byte little-endian header length, JSON header, data.
 * Returns { metadata, tensors: { name: { dtype, shape, values: Float64Array } } }.
 */
export function readSafetensors(path) {
  const bytes = readFileSync(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  const base = 8 + headerLength;
  const metadata = header.__metadata__ ?? {};
  const tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [size, read] = DTYPES[info.dtype] ?? [];
    if (!read) throw new Error(`${path}: ${name}: unsupported dtype ${info.dtype}`);
    const [start, end] = info.data_offsets;
    const count = (end - start) / size;
    const values = new Float64Array(count);
    for (let i = 0; i < count; i++) values[i] = read(view, base + start + i * size);
    tensors[name] = { dtype: info.dtype, shape: info.shape, values };
  }
  return { metadata, tensors };
}

/** A 2-D f32 tensor as the package's { rows, dim, data: Float32Array }. */
export function matrix(tensor) {
  if (tensor.shape.length !== 2) throw new Error(`not a matrix: shape ${tensor.shape}`);
  return { rows: tensor.shape[0], dim: tensor.shape[1], data: Float32Array.from(tensor.values) };
}

/** `prefix.0`, `prefix.1`, ... while present, as matrices. */
export function list(tensors, prefix) {
  const out = [];
  for (let i = 0; `${prefix}.${i}` in tensors; i++) out.push(matrix(tensors[`${prefix}.${i}`]));
  return out;
}

/** Largest absolute difference between two equally long arrays. */
export function maxAbsDiff(a, b) {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/** A PyLate reference's overrides (snake_case JSON) as the package's options (camelCase keys;
 * the engine checks them). */
export function optionsOf(overrides) {
  const options = {};
  for (const [key, value] of Object.entries(overrides)) {
    options[key.replace(/_([a-z])/g, (_, c) => c.toUpperCase())] = value;
  }
  return options;
}
