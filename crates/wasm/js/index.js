// Entry point of the latebird-wasm package: picks one of the four WebAssembly builds for the
// environment it runs in, instantiates it and returns its API.
//
//   simd             one thread, 128-bit SIMD (every current browser and Node)
//   relaxed          one thread, relaxed SIMD's fused multiply-add in the matrix products
//   threads          a pool of Web Workers sharing the module's memory
//   threads-relaxed  both
//
// Threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages
// (served with `Cross-Origin-Opener-Policy: same-origin` and
// `Cross-Origin-Embedder-Policy: require-corp`), and Web Workers; Node runs the
// single-threaded builds. Each build is loaded from the package's own folders at run time
// (`base`), never through a bundler: a bundled app copies them next to its bundle.

/** The builds, by name. */
export const BUILDS = ['simd', 'relaxed', 'threads', 'threads-relaxed'];

// The smallest module using f32x4.relaxed_madd: () -> v128 of three zero vectors.
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, //       type: () -> v128
  0x03, 0x02, 0x01, 0x00, //                         one function of that type
  0x0a, 0x3d, 0x01, 0x3b, 0x00, //                   code: one body of 59 bytes, no locals
  ...[0, 1, 2].flatMap(() => [0xfd, 0x0c, ...new Array(16).fill(0)]), // 3 x v128.const 0
  0xfd, 0x85, 0x02, //                               f32x4.relaxed_madd
  0x0b, //                                           end
]);

const isNode = typeof process !== 'undefined' && process.versions?.node !== undefined;

/** Whether this engine runs relaxed SIMD (validates a module that uses it). */
export function supportsRelaxedSimd() {
  try {
    return WebAssembly.validate(RELAXED_PROBE);
  } catch {
    return false;
  }
}

/** Whether the multi-threaded builds can run here, and if not, why. */
export function threadSupport() {
  if (isNode) return { ok: false, why: 'Node runs the single-threaded builds' };
  if (typeof SharedArrayBuffer === 'undefined' || globalThis.crossOriginIsolated !== true) {
    return {
      ok: false,
      why:
        'the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: ' +
        'same-origin and Cross-Origin-Embedder-Policy: require-corp)',
    };
  }
  if (typeof Worker === 'undefined') return { ok: false, why: 'Web Workers are not available here' };
  return { ok: true, why: 'cross-origin isolated' };
}

function invalid(message) {
  const error = new Error(message);
  error.name = 'InvalidInputError';
  return error;
}

/**
 * Which build `load(options)` runs and why, without loading it.
 * @param {{threads?: 'auto'|number|boolean, relaxedSimd?: 'auto'|boolean, build?: string}} options
 */
export function choose({ threads = 'auto', relaxedSimd = 'auto', build } = {}) {
  if (build !== undefined) {
    if (!BUILDS.includes(build)) {
      throw invalid(`build: expected one of ${BUILDS.join(', ')}, got ${JSON.stringify(build)}`);
    }
    const multi = build.startsWith('threads');
    const size = multi ? threadCount(threads) : 1;
    return { build, threads: size, why: 'asked for by name' };
  }
  if (!['auto', true, false].includes(relaxedSimd)) {
    throw invalid(`relaxedSimd: expected "auto", true or false, got ${JSON.stringify(relaxedSimd)}`);
  }
  const reasons = [];
  let relaxed = relaxedSimd === true;
  if (relaxedSimd === 'auto') {
    relaxed = supportsRelaxedSimd();
    reasons.push(relaxed ? 'relaxed SIMD supported' : 'no relaxed SIMD');
  }
  let size = threadCount(threads);
  if (size > 1 || threads === 'auto' || threads === true) {
    const support = threadSupport();
    if (!support.ok) {
      if (threads !== 'auto') throw invalid(`threads: ${support.why}`);
      size = 1;
    }
    reasons.push(support.why);
  }
  const name = (size > 1 ? 'threads' : '') + (relaxed ? (size > 1 ? '-relaxed' : 'relaxed') : '');
  return { build: name || 'simd', threads: size, why: reasons.join('; ') };
}

function threadCount(threads) {
  if (threads === false) return 1;
  if (threads === 'auto' || threads === true) {
    const cores = globalThis.navigator?.hardwareConcurrency ?? 1;
    return Math.max(1, Math.min(cores, 16));
  }
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
    throw invalid(
      `threads: expected "auto", true, false or an integer from 1 to 256, got ${JSON.stringify(threads)}`,
    );
  }
  return threads;
}

/**
 * Loads and instantiates a build: the one `choose(options)` picks, from the folder `base`
 * (default: this file's folder; a URL or path ending in "/").
 * Resolves to the build's exports (`ColBERT`, `maxsim`, `scores`, `rerank`, `topK`, `pool`,
 * `buildInfo`) plus `build` (its name), `threads` and `why`.
 */
export async function load(options = {}) {
  const { build, threads, why } = choose(options);
  const base = new URL(options.base ?? '.', import.meta.url);
  const folder = new URL(`${build}/`, base);
  const glue = new URL('latebird_wasm.js', folder);
  const wasm = new URL('latebird_wasm_bg.wasm', folder);
  // A run-time import, so that bundlers leave the build's files as they are (the thread pool's
  // workers import the same file by its URL).
  const module = await import(/* @vite-ignore */ /* webpackIgnore: true */ glue.href);
  if (isNode && wasm.protocol === 'file:') {
    // Not a literal: browser bundlers must not try to resolve a Node module.
    const fs = 'node:fs/promises';
    const { readFile } = await import(/* @vite-ignore */ fs);
    module.initSync({ module: await readFile(wasm) });
  } else {
    await module.default({ module_or_path: wasm });
  }
  if (build.startsWith('threads')) await module.startThreads(threads);
  return { ...module, build, threads: module.buildInfo().threads, why };
}
