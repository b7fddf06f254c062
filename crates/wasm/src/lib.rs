//! JavaScript adapter of latebird (wasm-bindgen): model files in as `Uint8Array`s, embeddings
//! out as `Float32Array`s, engine errors out as JS `Error`s. No engine logic lives here: every
//! function converts its arguments, calls the core and converts the result.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use js_sys::{
    Array, ArrayBuffer, Float32Array, Function, Object, Reflect, Uint32Array, Uint8Array,
};
use latebird::{
    Case, ColBERT as Engine, Embeddings, Error, ErrorKind, InputKind, Options, Overrides, Ranked,
};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** One text's token embeddings: a row-major `[rows, dim]` matrix (`data.length === rows * dim`). */
export interface Embeddings {
  rows: number;
  dim: number;
  data: Float32Array;
}

/** A model folder's files, keyed by their path relative to the folder ("config.json",
 * "1_Dense/model.safetensors", ...). A common top folder ("my-model/config.json") is stripped. */
export type ModelFiles =
  | Record<string, Uint8Array | ArrayBuffer>
  | Map<string, Uint8Array | ArrayBuffer>;

/** Overrides of the model folder's settings (the engine's `Overrides`); an absent, `undefined`
 * or `null` key keeps the folder's value. An unknown key, a value of the wrong type or out of
 * range throws an `InvalidInputError` naming the key (an unknown key's lists the accepted ones). */
export interface ColBERTOptions {
  /** Query length in tokens, prefix and special tokens included: an integer from 1 to 2^28
   * (the model's position limit applies when loading). */
  queryLength?: number;
  /** Maximum document length in tokens, as `queryLength`. */
  documentLength?: number;
  /** Prefix token of queries (`""`: none); it must be in the tokenizer's vocabulary. */
  queryPrefix?: string;
  /** Prefix token of documents (`""`: none). */
  documentPrefix?: string;
  /** Pad queries with MASK tokens to `queryLength` and keep every row. */
  doQueryExpansion?: boolean;
  /** Let the model attend to the expansion tokens. */
  attendToExpansionTokens?: boolean;
  /** Words whose rows are dropped from document outputs. */
  skiplistWords?: string[];
  /** Texts per forward pass in `encode`: an integer from 1 to 2^28 (default 32). */
  batchSize?: number;
  /** Arithmetic of the linear layers: "float32", "bfloat16" (half the weight memory) or
   * "int8" (weights quantized per output channel, about 1/4 of their memory); default: as the
   * model files store them ("int8" for a folder written by `latebird quantize`). */
  precision?: "float32" | "bfloat16" | "int8";
  /** Where the model runs: "cpu", the only device of WebAssembly builds (any other name, such
   * as "cuda", throws a `DeviceError`). */
  device?: "cpu";
}

/** The effective settings: the folder's, with the options applied (the same keys as
 * `ColBERTOptions`, every one present). */
export interface ColBERTSettings {
  queryLength: number;
  documentLength: number;
  queryPrefix: string;
  documentPrefix: string;
  doQueryExpansion: boolean;
  attendToExpansionTokens: boolean;
  skiplistWords: string[];
  batchSize: number;
  precision: "float32" | "bfloat16" | "int8";
  device: "cpu";
}

/** A text as the model sees it: one entry per position; `keep[i]` is 1 when position `i`
 * has a row in the encoded output (documents drop skiplist tokens). */
export interface Tokenized {
  ids: Uint32Array;
  tokens: string[];
  attention: Uint8Array;
  keep: Uint8Array;
}

/** A dense score matrix: `data[q * documents + d]` is query `q` against document `d`. */
export interface ScoreMatrix {
  queries: number;
  documents: number;
  data: Float32Array;
}

/** One entry of a ranking, best first. */
export interface Ranked<I = number> {
  id: I;
  score: number;
}

/** Called after each batch with the number of texts encoded so far; returning `false` stops. */
export type EncodeProgress = (done: number, total: number) => boolean | void;

/** Reranks each query's own candidates (`ids[i]` names `documents[i]`'s entries), keeping
 * the type of the ids. */
export function rerank<I>(
  queries: Embeddings[],
  documents: Embeddings[][],
  ids: I[][],
): Ranked<I>[][];

/** What this build was compiled with. */
export interface BuildInfo {
  version: string;
  /** WebAssembly 128-bit SIMD (every build has it). */
  simd128: boolean;
  /** Relaxed SIMD: fused multiply-add in the matrix products where the CPU has it. */
  relaxedSimd: boolean;
  /** Whether this is the multi-threaded build (shared memory, a pool of Web Workers). */
  multiThreaded: boolean;
  /** Threads the engine runs on: 1, or the pool's size once `startThreads` resolved (0 before). */
  threads: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "ModelFiles")]
    pub type ModelFiles;
    #[wasm_bindgen(typescript_type = "ColBERTOptions")]
    pub type ColBERTOptions;
    #[wasm_bindgen(typescript_type = "ColBERTSettings")]
    pub type ColBERTSettings;
    #[wasm_bindgen(typescript_type = "Embeddings")]
    pub type JsEmbeddings;
    #[wasm_bindgen(typescript_type = "Embeddings[]")]
    pub type JsEmbeddingsList;
    #[wasm_bindgen(typescript_type = "Embeddings[][]")]
    pub type JsEmbeddingsLists;
    #[wasm_bindgen(typescript_type = "string[]")]
    pub type JsStrings;
    #[wasm_bindgen(typescript_type = "Tokenized")]
    pub type JsTokenized;
    #[wasm_bindgen(typescript_type = "ScoreMatrix")]
    pub type JsScoreMatrix;
    #[wasm_bindgen(typescript_type = "Ranked<number>[]")]
    pub type JsRankedList;
    #[wasm_bindgen(typescript_type = "Ranked<unknown>[][]")]
    pub type JsRankedLists;
    #[wasm_bindgen(typescript_type = "unknown[][]")]
    pub type JsIdLists;
    #[wasm_bindgen(typescript_type = "EncodeProgress")]
    pub type JsProgress;
    #[wasm_bindgen(typescript_type = "BuildInfo")]
    pub type JsBuildInfo;
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The JS error for an engine error: an `Error` with the engine's message, named after the
/// class of failure as in the Python package (`ModelLoadError`, `InvalidInputError`,
/// `LatebirdError`), with the engine's argument names spelt as the JS API spells them
/// ([`js_names`]).
fn js_error(err: Error) -> JsValue {
    let err = match err {
        Error::InvalidArgument { name, message } => Error::InvalidArgument {
            name: js_names(&name),
            message: js_names(&message),
        },
        Error::InvalidConfig { file, message } => Error::InvalidConfig {
            file,
            message: js_names(&message),
        },
        other => other,
    };
    named_error(err.kind(), &err.to_string())
}

/// `text` with each argument name of the engine (`pool_factor`, `query_length`, ... : the
/// settings of `latebird::Overrides` and the encode and pooling arguments) spelt in camelCase,
/// as the JS API names them. Names inside backticks in a message are keys of a model file
/// (config_sentence_transformers.json's `query_length`) and stay as the file spells them;
/// other snake_case words (config keys such as max_position_embeddings) are not arguments.
fn js_names(text: &str) -> String {
    let mut arguments = Overrides::keys(Case::Snake);
    arguments.extend(["pool_factor", "protected_tokens"].map(String::from));
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String, quoted: bool| {
        if !quoted && arguments.contains(word) {
            out.push_str(&Case::Camel.spell(word));
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        flush(&mut word, &mut out, quoted);
        if c == '`' {
            quoted = !quoted;
        }
        out.push(c);
    }
    flush(&mut word, &mut out, quoted);
    out
}

fn named_error(kind: ErrorKind, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name(kind.exception_name());
    error.into()
}

/// Set once the engine has panicked in this instance.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Runs when the module is instantiated. The build aborts on panic (wasm32 cannot unwind), so
/// a panic would end in a bare `unreachable` trap; this hook throws a `LatebirdError` instead
/// (the JS exception leaves the wasm frames without running Rust code). Whatever the
/// interrupted call held stays held, so the instance is marked unusable: every later call
/// throws a `LatebirdError` saying so, rather than run on a state nobody can vouch for.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        PANICKED.store(true, Ordering::SeqCst);
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = format!(
            "{}{place}; this WebAssembly instance can no longer be used: instantiate the module again",
            Error::Internal {
                message: latebird::panic_message(info.payload()),
            }
        );
        wasm_bindgen::throw_val(named_error(ErrorKind::Internal, &message));
    }));
}

/// Refuses to run in an instance that has panicked (see [`start`]), and in a multi-threaded
/// build whose thread pool is not running yet (see [`start_threads`]).
fn usable() -> Result<(), JsValue> {
    if PANICKED.load(Ordering::SeqCst) {
        return Err(named_error(
            ErrorKind::Internal,
            "an earlier internal error (a panic) left this WebAssembly instance in an unknown state; instantiate the module again",
        ));
    }
    #[cfg(feature = "threads")]
    if threads::started() == 0 {
        return Err(named_error(
            ErrorKind::Internal,
            "this is the multi-threaded build: start its thread pool first (`await startThreads(n)`, which `load()` of the package's entry point does)",
        ));
    }
    Ok(())
}

/// The thread pool of the multi-threaded build: Web Workers sharing this instance's memory.
#[cfg(feature = "threads")]
mod threads {
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The pool's size once it runs, 0 before.
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    /// The size asked for, while the workers start.
    static REQUESTED: AtomicUsize = AtomicUsize::new(0);

    pub(crate) fn started() -> usize {
        STARTED.load(Ordering::SeqCst)
    }

    /// Claims the one start of the pool; the size of the pool already asked for otherwise.
    pub(crate) fn claim(threads: usize) -> Result<(), usize> {
        REQUESTED
            .compare_exchange(0, threads, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| ())
    }

    pub(crate) fn mark_started() {
        STARTED.store(REQUESTED.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// Starts the engine's thread pool on `threads` Web Workers (the multi-threaded build only;
/// once per instance). Resolves when every worker runs; the engine refuses calls before.
/// The workers block while they wait for work, so the page must be cross-origin isolated
/// (`crossOriginIsolated`), and encoding should run in a worker of its own, not on the page's
/// main thread.
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = startThreads)]
pub fn start_threads(threads: usize) -> Result<js_sys::Promise, JsValue> {
    if PANICKED.load(Ordering::SeqCst) {
        usable()?;
    }
    if threads == 0 || threads > 256 {
        return Err(invalid(
            "threads",
            format!("expected an integer from 1 to 256, got {threads}"),
        ));
    }
    if let Err(size) = threads::claim(threads) {
        return Err(invalid(
            "threads",
            format!("the thread pool was already started with {size} threads; it starts once per instance"),
        ));
    }
    // The pool's promise settles once; the closure lives as long as the instance.
    let ready = Closure::<dyn FnMut(JsValue)>::new(|_| threads::mark_started());
    let promise = wasm_bindgen_rayon::init_thread_pool(threads).then(&ready);
    ready.forget();
    Ok(promise)
}

/// An [`Error::InvalidArgument`] raised by the adapter itself (a JS value of the wrong type),
/// naming the argument as the JS API (or the caller, for an option key) spells it.
fn invalid(name: impl Into<String>, message: impl Into<String>) -> JsValue {
    let err = Error::InvalidArgument {
        name: name.into(),
        message: message.into(),
    };
    named_error(err.kind(), &err.to_string())
}

/// What a JS value is, for error messages.
fn describe(value: &JsValue) -> String {
    if value.is_undefined() {
        "undefined".into()
    } else if value.is_null() {
        "null".into()
    } else if Array::is_array(value) {
        "an array".into()
    } else if let Some(object) = value.dyn_ref::<Object>() {
        let name: String = object.constructor().name().into();
        if name.is_empty() {
            "an object".into()
        } else {
            format!("a {name}")
        }
    } else {
        format!("a {}", value.js_typeof().as_string().unwrap_or_default())
    }
}

// ---------------------------------------------------------------------------------------------
// Argument conversion

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    // Setting a data property on a plain object cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(key), &value.into());
}

/// A whole number in `0..=u32::MAX` (what a length, a count or a factor can be).
fn whole(value: &JsValue, name: &str) -> Result<usize, JsValue> {
    match value.as_f64() {
        Some(v) if v.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&v) => Ok(v as usize),
        Some(v) => Err(invalid(
            name,
            format!("is {v}; expected a whole number >= 0"),
        )),
        None => Err(invalid(
            name,
            format!("is {}; expected a number", describe(value)),
        )),
    }
}

fn string(value: &JsValue, name: &str) -> Result<String, JsValue> {
    // A lone surrogate cannot become UTF-8: the conversion would replace it with U+FFFD and
    // encode a different text than the caller gave.
    if let Some(text) = value.dyn_ref::<js_sys::JsString>() {
        if !text.is_well_formed() {
            return Err(invalid(
                name,
                "holds a lone surrogate (malformed UTF-16); expected well-formed text",
            ));
        }
    }
    value
        .as_string()
        .ok_or_else(|| invalid(name, format!("is {}; expected a string", describe(value))))
}

fn strings(value: &JsValue, name: &str) -> Result<Vec<String>, JsValue> {
    let array = value.dyn_ref::<Array>().ok_or_else(|| {
        invalid(
            name,
            format!("is {}; expected an array of strings", describe(value)),
        )
    })?;
    array
        .iter()
        .enumerate()
        .map(|(i, v)| string(&v, &format!("{name}[{i}]")))
        .collect()
}

/// Reads the options through the engine's one definition of the settings
/// (`latebird::Overrides`, camelCase keys): the engine checks the keys and the values.
fn read_options(options: Option<ColBERTOptions>) -> Result<Options, JsValue> {
    let Some(options) = options else {
        return Ok(Options::default());
    };
    let options: JsValue = options.into();
    if options.is_undefined() || options.is_null() {
        return Ok(Options::default());
    }
    let object = options.dyn_ref::<Object>().ok_or_else(|| {
        invalid(
            "options",
            format!("is {}; expected an object", describe(&options)),
        )
    })?;
    let mut map = serde_json::Map::new();
    for entry in Object::entries(object).iter() {
        let entry: Array = entry.unchecked_into();
        let key = entry.get(0).as_string().unwrap_or_default();
        let value = json_value(&entry.get(1), &key, true)?;
        map.insert(key, value);
    }
    // The engine already names the keys as the caller spelt them (camelCase): no renaming,
    // which would turn a misspelt `query_length` into an accepted name in the message.
    let overrides = Overrides::from_map(&map, Case::Camel)
        .map_err(|err| named_error(err.kind(), &err.to_string()))?;
    Ok(Options::default().with_overrides(overrides))
}

/// A JS option value as the JSON value the engine checks: `undefined`/`null`, a boolean, a
/// number (a whole one as an integer), a string, an array of them (`top` only: a nested array
/// or an object is passed as an empty one, which the engine refuses by its kind). What has no
/// JSON form is refused here: a number that is not finite, a lone surrogate, a function, a
/// symbol or a bigint.
fn json_value(value: &JsValue, name: &str, top: bool) -> Result<Value, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(v) = value.as_f64() {
        return if v.fract() == 0.0 && v.abs() < 9.2e18 {
            Ok(if v >= 0.0 {
                Value::from(v as u64)
            } else {
                Value::from(v as i64)
            })
        } else {
            serde_json::Number::from_f64(v)
                .map(Value::Number)
                .ok_or_else(|| invalid(name, format!("is {v}; expected a finite number")))
        };
    }
    if value.is_string() {
        return string(value, name).map(Value::String);
    }
    if let Some(items) = value.dyn_ref::<Array>() {
        if !top {
            return Ok(Value::Array(Vec::new()));
        }
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| json_value(&item, &format!("{name}[{i}]"), false))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array);
    }
    if value.is_object() && !value.is_function() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    Err(invalid(
        name,
        format!(
            "is {}; expected a number, a string, a boolean or an array of strings",
            describe(value)
        ),
    ))
}

/// A JSON value of the engine (the effective settings) as a JS value.
fn js_value(value: &Value) -> JsValue {
    match value {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => JsValue::from_str(s),
        Value::Array(items) => items.iter().map(js_value).collect::<Array>().into(),
        Value::Object(map) => {
            let object = Object::new();
            for (k, v) in map {
                set(&object, k, js_value(v));
            }
            object.into()
        }
    }
}

/// Copies a file's bytes into wasm memory once, straight into the shared buffer the engine
/// keeps (a `Vec` first and then an `Arc` would copy twice, and wasm memory never shrinks).
fn file_bytes(value: &JsValue, name: &str) -> Result<Arc<[u8]>, JsValue> {
    let bytes = if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        bytes.clone()
    } else if let Some(buffer) = value.dyn_ref::<ArrayBuffer>() {
        Uint8Array::new(buffer)
    } else {
        return Err(invalid(
            "files",
            format!(
                "{name:?} is {}; expected a Uint8Array or an ArrayBuffer",
                describe(value)
            ),
        ));
    };
    let mut shared: Arc<[MaybeUninit<u8>]> = Arc::new_uninit_slice(bytes.length() as usize);
    let Some(slot) = Arc::get_mut(&mut shared) else {
        unreachable!("a fresh Arc has one owner")
    };
    bytes.copy_to_uninit(slot);
    // SAFETY: `copy_to_uninit` initialised every byte (the slice has the array's length).
    Ok(unsafe { shared.assume_init() })
}

/// A model file's name and bytes.
type NamedFile = (String, Arc<[u8]>);

fn read_files(files: &JsValue) -> Result<Vec<NamedFile>, JsValue> {
    let entries: Array = if let Some(map) = files.dyn_ref::<js_sys::Map>() {
        Array::from(&map.entries())
    } else if files.is_object() && !Array::is_array(files) {
        Object::entries(files.unchecked_ref())
    } else {
        return Err(invalid(
            "files",
            format!(
                "is {}; expected an object or a Map of file names to Uint8Array",
                describe(files)
            ),
        ));
    };
    let mut out = Vec::with_capacity(entries.length() as usize);
    for entry in entries.iter() {
        let entry: Array = entry.unchecked_into();
        let key = entry.get(0);
        let name = key.as_string().ok_or_else(|| {
            invalid(
                "files",
                format!("has a key that is {}; expected file names", describe(&key)),
            )
        })?;
        let bytes = file_bytes(&entry.get(1), &name)?;
        out.push((name, bytes));
    }
    Ok(out)
}

/// Reads `{rows, dim, data: Float32Array}`; the shape itself is checked by the engine.
fn read_matrix(value: &JsValue, name: &dyn Fn() -> String) -> Result<Embeddings, JsValue> {
    if !value.is_object() {
        return Err(invalid(
            name(),
            format!(
                "is {}; expected {{rows, dim, data: Float32Array}}",
                describe(value)
            ),
        ));
    }
    let rows = whole(&get(value, "rows"), &format!("{}.rows", name()))?;
    let dim = whole(&get(value, "dim"), &format!("{}.dim", name()))?;
    let data = get(value, "data");
    let data = data.dyn_ref::<Float32Array>().ok_or_else(|| {
        invalid(
            format!("{}.data", name()),
            format!("is {}; expected a Float32Array", describe(&data)),
        )
    })?;
    Ok(Embeddings {
        rows,
        dim,
        data: data.to_vec(),
    })
}

fn array<'a>(value: &'a JsValue, name: &str) -> Result<&'a Array, JsValue> {
    value
        .dyn_ref::<Array>()
        .ok_or_else(|| invalid(name, format!("is {}; expected an array", describe(value))))
}

fn read_matrices(value: &JsValue, name: &str) -> Result<Vec<Embeddings>, JsValue> {
    array(value, name)?
        .iter()
        .enumerate()
        .map(|(i, m)| read_matrix(&m, &|| format!("{name}[{i}]")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Results

fn embeddings_object(e: &Embeddings) -> Object {
    let object = Object::new();
    set(&object, "rows", e.rows as f64);
    set(&object, "dim", e.dim as f64);
    set(&object, "data", Float32Array::new_from_slice(&e.data));
    object
}

fn ranked_array<I: Into<JsValue> + Clone>(ranked: &[Ranked<I>]) -> Array {
    ranked
        .iter()
        .map(|r| {
            let object = Object::new();
            set(&object, "id", r.id.clone());
            set(&object, "score", r.score as f64);
            JsValue::from(object)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The model

/// A loaded late-interaction model.
#[wasm_bindgen(js_name = ColBERT)]
pub struct Model {
    engine: Engine,
}

#[wasm_bindgen(js_class = ColBERT)]
impl Model {
    /// Loads a PyLate model from its files' bytes. Throws a `ModelLoadError` when a file is
    /// missing or malformed, an `InvalidInputError` for a bad argument.
    #[wasm_bindgen(js_name = fromFiles)]
    pub fn from_files(
        files: &ModelFiles,
        options: Option<ColBERTOptions>,
    ) -> Result<Model, JsValue> {
        usable()?;
        let options = read_options(options)?;
        let files = read_files(files)?;
        let engine = Engine::from_files(files, options).map_err(js_error)?;
        Ok(Model { engine })
    }

    /// Width of the output rows.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.engine.dim()
    }

    /// The arithmetic of the linear layers: "float32", "bfloat16" or "int8".
    #[wasm_bindgen(getter)]
    pub fn precision(&self) -> String {
        self.engine.precision().name().to_string()
    }

    /// The effective settings (the folder's, with the options applied).
    #[wasm_bindgen(getter)]
    pub fn settings(&self) -> ColBERTSettings {
        let mut settings = self.engine.settings().to_map(Case::Camel);
        settings.insert(
            Case::Camel.spell("batch_size"),
            Value::from(self.engine.batch_size()),
        );
        settings.insert(
            "precision".to_string(),
            Value::from(self.engine.precision().name()),
        );
        settings.insert(
            "device".to_string(),
            Value::from(self.engine.device().name()),
        );
        js_value(&Value::Object(settings)).unchecked_into()
    }

    /// Encodes texts into one `{rows, dim, data}` matrix each, in input order. Queries when
    /// `isQuery`, else documents; documents are pooled when `poolFactor` > 1 (PyLate's
    /// hierarchical pooling). Queries are never pooled: `poolFactor` > 1 with `isQuery` throws
    /// an `InvalidInputError`, as in every latebird front end. `onProgress(done, total)` is
    /// called after each batch; returning `false` stops with an error.
    pub fn encode(
        &self,
        texts: &JsStrings,
        #[wasm_bindgen(js_name = isQuery)] is_query: bool,
        #[wasm_bindgen(js_name = poolFactor)] pool_factor: Option<f64>,
        #[wasm_bindgen(js_name = onProgress)] on_progress: Option<JsProgress>,
    ) -> Result<JsEmbeddingsList, JsValue> {
        usable()?;
        let texts = strings(texts, "texts")?;
        let pool_factor = match pool_factor {
            Some(v) => whole(&JsValue::from_f64(v), "poolFactor")?,
            None => 1,
        };
        let kind = if is_query {
            InputKind::Query
        } else {
            InputKind::Document
        };
        let callback: Option<Function> = on_progress.map(JsCast::unchecked_into);
        let total = JsValue::from_f64(texts.len() as f64);
        let mut thrown: Option<JsValue> = None;
        let mut progress = |done: usize| -> bool {
            let Some(callback) = &callback else {
                return true;
            };
            match callback.call2(&JsValue::NULL, &JsValue::from_f64(done as f64), &total) {
                Ok(answer) => answer.as_bool() != Some(false),
                Err(error) => {
                    thrown = Some(error);
                    false
                }
            }
        };
        let result = self.engine.encode_pooled(
            &texts,
            kind,
            self.engine.batch_size(),
            pool_factor,
            &mut progress,
        );
        if let Some(error) = thrown {
            // The callback threw: that error, not "cancelled", is what the caller sees.
            return Err(error);
        }
        let encoded = result.map_err(js_error)?;
        let out: Array = encoded
            .iter()
            .map(|e| JsValue::from(embeddings_object(e)))
            .collect();
        Ok(out.unchecked_into())
    }

    /// Tokenizes one text exactly as it is fed to the model, with the vocabulary string of
    /// each token.
    pub fn tokenize(
        &self,
        text: &js_sys::JsString,
        #[wasm_bindgen(js_name = isQuery)] is_query: bool,
    ) -> Result<JsTokenized, JsValue> {
        usable()?;
        let text = &string(text, "text")?;
        let kind = if is_query {
            InputKind::Query
        } else {
            InputKind::Document
        };
        let t = self.engine.tokenize(text, kind).map_err(js_error)?;
        let tokens: Array = t
            .ids
            .iter()
            .map(|&id| JsValue::from(self.engine.id_to_token(id).unwrap_or_default()))
            .collect();
        let attention: Vec<u8> = t.attention.iter().map(|&a| u8::from(a != 0)).collect();
        let keep: Vec<u8> = t.keep.iter().map(|&k| u8::from(k)).collect();
        let object = Object::new();
        set(&object, "ids", Uint32Array::new_from_slice(&t.ids));
        set(&object, "tokens", tokens);
        set(&object, "attention", Uint8Array::new_from_slice(&attention));
        set(&object, "keep", Uint8Array::new_from_slice(&keep));
        Ok(object.unchecked_into())
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring

/// MaxSim score of one query against one document.
#[wasm_bindgen]
pub fn maxsim(query: &JsEmbeddings, document: &JsEmbeddings) -> Result<f64, JsValue> {
    usable()?;
    let q = read_matrix(query, &|| "query".into())?;
    let d = read_matrix(document, &|| "document".into())?;
    latebird::maxsim(&q, &d).map(f64::from).map_err(js_error)
}

/// MaxSim scores of every query against every document.
#[wasm_bindgen]
pub fn scores(
    queries: &JsEmbeddingsList,
    documents: &JsEmbeddingsList,
) -> Result<JsScoreMatrix, JsValue> {
    usable()?;
    let q = read_matrices(queries, "queries")?;
    let d = read_matrices(documents, "documents")?;
    let matrix = latebird::scores(&q, &d).map_err(js_error)?;
    let object = Object::new();
    set(&object, "queries", matrix.queries as f64);
    set(&object, "documents", matrix.documents as f64);
    set(&object, "data", Float32Array::new_from_slice(&matrix.data));
    Ok(object.unchecked_into())
}

/// Reranks each query's own candidates: `documents[i]` are query `i`'s candidates and
/// `ids[i]` their ids (any JS values). Returns per query every candidate, best first; equal
/// scores keep the input order.
#[wasm_bindgen]
pub fn rerank(
    queries: &JsEmbeddingsList,
    documents: &JsEmbeddingsLists,
    ids: &JsIdLists,
) -> Result<JsRankedLists, JsValue> {
    usable()?;
    let q = read_matrices(queries, "queries")?;
    let d: Vec<Vec<Embeddings>> = array(documents, "documents")?
        .iter()
        .enumerate()
        .map(|(i, list)| read_matrices(&list, &format!("documents[{i}]")))
        .collect::<Result<_, _>>()?;
    let ids: Vec<Vec<JsValue>> = array(ids, "ids")?
        .iter()
        .enumerate()
        .map(|(i, list)| array(&list, &format!("ids[{i}]")).map(|a| a.to_vec()))
        .collect::<Result<_, _>>()?;
    let ranked = latebird::rerank(&q, &d, &ids).map_err(js_error)?;
    let out: Array = ranked
        .iter()
        .map(|r| JsValue::from(ranked_array(r)))
        .collect();
    Ok(out.unchecked_into())
}

/// The `k` best documents for one query, best first, as `{id: index into documents, score}`.
#[wasm_bindgen(js_name = topK)]
pub fn top_k(
    query: &JsEmbeddings,
    documents: &JsEmbeddingsList,
    k: f64,
) -> Result<JsRankedList, JsValue> {
    usable()?;
    let q = read_matrix(query, &|| "query".into())?;
    let d = read_matrices(documents, "documents")?;
    let k = whole(&JsValue::from_f64(k), "k")?;
    let ranked = latebird::top_k(&q, &d, k).map_err(js_error)?;
    let ranked: Vec<Ranked<f64>> = ranked
        .into_iter()
        .map(|r| Ranked {
            id: r.id as f64,
            score: r.score,
        })
        .collect();
    Ok(ranked_array(&ranked).unchecked_into())
}

/// PyLate's hierarchical token pooling of one document (the first row is kept as it is).
#[wasm_bindgen]
pub fn pool(
    embeddings: &JsEmbeddings,
    #[wasm_bindgen(js_name = poolFactor)] pool_factor: f64,
) -> Result<JsEmbeddings, JsValue> {
    usable()?;
    let m = read_matrix(embeddings, &|| "embeddings".into())?;
    let factor = whole(&JsValue::from_f64(pool_factor), "poolFactor")?;
    let pooled = latebird::pool(&m, factor).map_err(js_error)?;
    Ok(embeddings_object(&pooled).unchecked_into())
}

/// Panics inside the engine on purpose: the tests use it to check that a panic reaches JS as a
/// `LatebirdError` and that the instance then refuses further calls. Not part of the API.
#[wasm_bindgen(js_name = _panicForTests)]
pub fn panic_for_tests(message: &str) -> Result<(), JsValue> {
    usable()?;
    panic!("{message}")
}

/// The package version and the WebAssembly features this build uses.
#[wasm_bindgen(js_name = buildInfo)]
pub fn build_info() -> JsBuildInfo {
    let object = Object::new();
    set(&object, "version", env!("CARGO_PKG_VERSION"));
    set(&object, "simd128", cfg!(target_feature = "simd128"));
    set(
        &object,
        "relaxedSimd",
        cfg!(target_feature = "relaxed-simd"),
    );
    #[cfg(feature = "threads")]
    let threads = threads::started();
    #[cfg(not(feature = "threads"))]
    let threads = 1;
    set(&object, "threads", threads);
    set(&object, "multiThreaded", cfg!(feature = "threads"));
    object.unchecked_into()
}
