// Types of the package's entry point (index.js). The engine's API is each build's
// wasm-bindgen output, typed in `<build>/latebird_wasm.d.ts`; every build has the same API.
import type * as Engine from './simd/latebird_wasm.js';

export type {
  BuildInfo,
  ColBERTOptions,
  ColBERTSettings,
  EncodeProgress,
  Embeddings,
  ModelFiles,
  Ranked,
  ScoreMatrix,
  Tokenized,
} from './simd/latebird_wasm.js';

/** The four builds: one thread or a pool of Web Workers, with or without relaxed SIMD. */
export type BuildName = 'simd' | 'relaxed' | 'threads' | 'threads-relaxed';

export const BUILDS: readonly BuildName[];

export interface LoadOptions {
  /** Threads to encode on: "auto" (default: `navigator.hardwareConcurrency`, at most 16, when
   * the page is cross-origin isolated, else 1), `false` (one), `true` or a count from 1 to 256
   * (which throws an `InvalidInputError` where threads cannot run, saying why). */
  threads?: 'auto' | boolean | number;
  /** Relaxed SIMD: "auto" (default: when the engine validates it), `true` or `false`. */
  relaxedSimd?: 'auto' | boolean;
  /** A build by name, instead of choosing one. */
  build?: BuildName;
  /** The folder holding the build folders (default: the folder of index.js), as a URL or a
   * path relative to it, ending in "/". */
  base?: string | URL;
}

/** What `load` would run, and why. */
export interface Choice {
  build: BuildName;
  threads: number;
  why: string;
}

/** A loaded build: its API, its name, its thread count and why it was chosen. */
export type Latebird = typeof Engine & Choice;

/** Picks the build for these options in this environment, without loading it. */
export function choose(options?: LoadOptions): Choice;

/** Loads, instantiates and (for a threaded build) starts the chosen build. */
export function load(options?: LoadOptions): Promise<Latebird>;

/** Whether this JavaScript engine runs relaxed SIMD. */
export function supportsRelaxedSimd(): boolean;

/** Whether the multi-threaded builds can run here, and why (not). */
export function threadSupport(): { ok: boolean; why: string };
