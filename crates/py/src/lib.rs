//! Python adapter of latebird: argument conversion, GIL release, numpy out, exceptions.
//! No engine logic lives here.

use latebird::{
    catch_panic, Case, ColBERT, Error, ErrorKind, InputKind, MatrixRef, Options, Overrides,
};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOverflowError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString, PyTuple};

create_exception!(
    _latebird,
    LatebirdError,
    PyException,
    "Base class of every error latebird raises."
);
create_exception!(
    _latebird,
    ModelLoadError,
    LatebirdError,
    "The model folder is missing a file, or a file is malformed or does not match the config."
);
create_exception!(
    _latebird,
    InvalidInputError,
    LatebirdError,
    "An argument or input text is out of range or inconsistent."
);

create_exception!(
    _latebird,
    DeviceError,
    LatebirdError,
    "The device asked for is missing from this build (a Cargo feature) or from this machine (a GPU, a driver)."
);
create_exception!(
    _latebird,
    HubError,
    ModelLoadError,
    "The model could not be fetched from the hub (network failure, HTTP error, bad answer)."
);
create_exception!(
    _latebird,
    RepositoryNotFoundError,
    HubError,
    "The hub has no such repository, or hides a private or gated one from this token."
);
create_exception!(
    _latebird,
    RevisionNotFoundError,
    HubError,
    "The repository has no such branch, tag or commit."
);
create_exception!(
    _latebird,
    EntryNotFoundError,
    HubError,
    "A file of the model is missing on the hub, or the repository is not a PyLate model."
);
create_exception!(
    _latebird,
    NotCachedError,
    HubError,
    "Offline (HF_HUB_OFFLINE=1 or hub unreachable) and the model is not in the cache."
);

fn hub_err(err: latebird_hub::Error) -> PyErr {
    use latebird_hub::Error as E;
    let message = err.to_string();
    match err {
        E::InvalidRepoId { .. } | E::InvalidRevision { .. } => InvalidInputError::new_err(message),
        E::RepoNotFound { .. } | E::AccessDenied { .. } => {
            RepositoryNotFoundError::new_err(message)
        }
        E::RevisionNotFound { .. } => RevisionNotFoundError::new_err(message),
        E::FileNotFound { .. } | E::NotAModel { .. } => EntryNotFoundError::new_err(message),
        E::NotCached { .. } => NotCachedError::new_err(message),
        _ => HubError::new_err(message),
    }
}

/// Fetches the PyLate files of a hub repository into the huggingface_hub cache and returns
/// the snapshot folder. `None` arguments come from the environment (HF_ENDPOINT,
/// HF_HUB_CACHE/HF_HOME, HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_DOWNLOAD_TIMEOUT).
#[pyfunction]
#[pyo3(signature = (repo_id, revision=None, *, cache_dir=None, token=None, endpoint=None, offline=None, timeout=None))]
#[allow(clippy::too_many_arguments)]
fn hub_download(
    py: Python<'_>,
    repo_id: &str,
    revision: Option<&str>,
    cache_dir: Option<std::path::PathBuf>,
    token: Option<String>,
    endpoint: Option<String>,
    offline: Option<bool>,
    timeout: Option<f64>,
) -> PyResult<std::path::PathBuf> {
    let mut options = latebird_hub::HubOptions::from_env();
    if let Some(cache_dir) = cache_dir {
        options.cache_dir = cache_dir;
    }
    if let Some(token) = token {
        options.token = Some(token).filter(|t| !t.is_empty());
    }
    if let Some(endpoint) = endpoint {
        options.endpoint = endpoint.trim_end_matches('/').to_string();
    }
    if let Some(offline) = offline {
        options.offline = offline;
    }
    if let Some(timeout) = timeout {
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(InvalidInputError::new_err(format!(
                "invalid argument `timeout`: {timeout}; expected seconds > 0"
            )));
        }
        options.timeout = std::time::Duration::from_secs_f64(timeout);
    }
    py.detach(|| latebird_hub::download_with(repo_id, revision, &options))
        .map_err(hub_err)
}

fn to_py_err(err: Error) -> PyErr {
    let message = err.to_string();
    match err.kind() {
        ErrorKind::Load => ModelLoadError::new_err(message),
        ErrorKind::Input => InvalidInputError::new_err(message),
        ErrorKind::Device => DeviceError::new_err(message),
        _ => LatebirdError::new_err(message),
    }
}

/// An integer argument as a `usize` of at least `min`: a Python `int` or anything with
/// `__index__` (numpy integers), not a bool. Anything else, a negative number or one beyond
/// what the platform can hold is an `InvalidInputError` naming the argument (pyo3's own
/// conversion would raise a bare `OverflowError` or `TypeError` without the name).
fn whole(name: &str, value: &Bound<'_, PyAny>, min: usize) -> PyResult<usize> {
    let shown = || {
        let text = value
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        if text.chars().count() > 40 {
            format!("{}...", text.chars().take(40).collect::<String>())
        } else {
            text
        }
    };
    let invalid = |what: String| {
        InvalidInputError::new_err(format!(
            "invalid argument `{name}`: {what}; expected an integer >= {min}"
        ))
    };
    if value.is_instance_of::<PyBool>() {
        return Err(invalid(format!("is {}", shown())));
    }
    match value.extract::<i128>() {
        Ok(n) => match usize::try_from(n) {
            Ok(n) if n >= min => Ok(n),
            Ok(_) => Err(invalid(format!("is {n}"))),
            Err(_) if n < 0 => Err(invalid(format!("is {n}"))),
            Err(_) => Err(invalid(format!(
                "is {n}, more than this platform can address"
            ))),
        },
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => {
            Err(invalid(format!("is {}, far out of range", shown())))
        }
        Err(_) => {
            let kind = value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_else(|_| "?".into());
            Err(invalid(format!("is {} (a {kind})", shown())))
        }
    }
}

/// A text as UTF-8; a lone surrogate (which `json.loads` or `str` slicing can produce) has
/// no UTF-8 form and is an `InvalidInputError` naming the text, not a `UnicodeEncodeError`.
fn utf8(text: &Bound<'_, PyString>, name: &str) -> PyResult<String> {
    text.to_cow().map(|c| c.into_owned()).map_err(|e| {
        InvalidInputError::new_err(format!(
            "invalid argument `{name}`: not valid Unicode text ({}); expected a str without lone surrogates",
            e.value(text.py())
        ))
    })
}

/// [`whole`] for an optional argument (`None` stays `None`).
fn optional_whole(
    name: &str,
    value: Option<&Bound<'_, PyAny>>,
    min: usize,
) -> PyResult<Option<usize>> {
    match value {
        Some(v) if !v.is_none() => whole(name, v, min).map(Some),
        _ => Ok(None),
    }
}

/// A keyword argument as the JSON value the engine checks (`latebird::Overrides::from_map`):
/// `None`, a bool, an int (numpy integers too), a float, a str, or a list or tuple of them
/// (`top` only: an item that is itself a list or a dict is passed as an empty one, which the
/// engine refuses by its kind). Only what has no JSON form is refused here: a lone surrogate,
/// a float that is not finite, an object of another type.
fn json_value(value: &Bound<'_, PyAny>, name: &str, top: bool) -> PyResult<serde_json::Value> {
    use serde_json::Value;
    let refuse = |what: &str| {
        let shown = value
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into());
        let shown: String = if shown.chars().count() > 40 {
            format!("{}...", shown.chars().take(40).collect::<String>())
        } else {
            shown
        };
        InvalidInputError::new_err(format!(
            "invalid argument `{name}`: is {shown}{what}; expected an int, a bool, a str, a list of str or None"
        ))
    };
    let number = |v: f64| {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| refuse(", not a finite number"))
    };
    if value.is_none() {
        return Ok(Value::Null);
    }
    if value.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(value.extract::<bool>()?));
    }
    if let Ok(text) = value.cast::<PyString>() {
        return utf8(text, name).map(Value::String);
    }
    if let Ok(v) = value.cast::<PyFloat>() {
        return number(v.value());
    }
    if let Ok(list) = value.cast::<PyList>() {
        return array(list.iter(), name, top);
    }
    if let Ok(tuple) = value.cast::<PyTuple>() {
        return array(tuple.iter(), name, top);
    }
    if value.is_instance_of::<PyDict>() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    // Integers: Python ints and anything with `__index__` (numpy integers). Beyond 64 bits
    // they go on as a float, which the engine calls out of range.
    match value.extract::<i128>() {
        Ok(n) => {
            return Ok(match (u64::try_from(n), i64::try_from(n)) {
                (Ok(u), _) => Value::from(u),
                (_, Ok(i)) => Value::from(i),
                _ => number(n as f64)?,
            })
        }
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => {
            return match value.extract::<f64>() {
                Ok(v) => number(v),
                Err(_) => Err(refuse(", far out of range")),
            };
        }
        Err(_) => {}
    }
    // numpy.bool_, then other numbers (numpy floats).
    if let Ok(b) = value.extract::<bool>() {
        return Ok(Value::Bool(b));
    }
    if let Ok(v) = value.extract::<f64>() {
        return number(v);
    }
    let kind = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into());
    Err(refuse(&format!(" (type {kind})")))
}

/// The items of a list or tuple argument, each as [`json_value`] makes it (`name[i]` in errors).
fn array<'py>(
    items: impl Iterator<Item = Bound<'py, PyAny>>,
    name: &str,
    top: bool,
) -> PyResult<serde_json::Value> {
    if !top {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    items
        .enumerate()
        .map(|(i, item)| json_value(&item, &format!("{name}[{i}]"), false))
        .collect::<PyResult<Vec<_>>>()
        .map(serde_json::Value::Array)
}

/// A JSON value of the engine (the effective settings) as a Python object.
fn py_value<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.into_pyobject(py)?.into_any(),
            (_, Some(i)) => i.into_pyobject(py)?.into_any(),
            _ => n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => PyList::new(
            py,
            items
                .iter()
                .map(|v| py_value(py, v))
                .collect::<PyResult<Vec<_>>>()?,
        )?
        .into_any(),
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, py_value(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A loaded model (the engine behind `latebird.ColBERT`).
#[pyclass(module = "latebird._latebird", frozen)]
struct Model {
    inner: ColBERT,
}

#[pymethods]
impl Model {
    /// Loads a model folder. The keyword arguments are the settings overrides
    /// (`latebird::Overrides`, snake_case names: `query_length=...`, `device="cuda:0"`),
    /// checked by the engine; `None` keeps the folder's value.
    #[new]
    #[pyo3(signature = (path, **overrides))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        overrides: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let mut map = serde_json::Map::new();
        for (key, value) in overrides.into_iter().flatten() {
            let key = utf8(key.cast::<PyString>()?, "keyword argument")?;
            let value = json_value(&value, &key, true)?;
            map.insert(key, value);
        }
        let overrides = Overrides::from_map(&map, Case::Snake).map_err(to_py_err)?;
        let options = Options::default().with_overrides(overrides);
        let inner = py
            .detach(|| catch_panic(|| ColBERT::from_folder(&path, options)))
            .map_err(to_py_err)?;
        Ok(Model { inner })
    }

    /// Encodes `texts` into one float32 array `[n_tokens, dim]` each. `progress`, if given,
    /// is called with the number of texts done after each batch. Ctrl-C stops between batches.
    #[pyo3(signature = (texts, is_query, batch_size, pool_factor=None, progress=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<Bound<'py, PyString>>,
        is_query: bool,
        batch_size: &Bound<'py, PyAny>,
        pool_factor: Option<&Bound<'py, PyAny>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let texts = texts
            .iter()
            .enumerate()
            .map(|(i, t)| utf8(t, &format!("sentences[{i}]")))
            .collect::<PyResult<Vec<String>>>()?;
        let batch_size = whole("batch_size", batch_size, 1)?;
        let pool_factor = optional_whole("pool_factor", pool_factor, 1)?.unwrap_or(1);
        let kind = if is_query {
            InputKind::Query
        } else {
            InputKind::Document
        };
        let mut interrupt: Option<PyErr> = None;
        let result = py.detach(|| {
            let mut on_batch = |done: usize| {
                Python::attach(|py| {
                    let outcome = py.check_signals().and_then(|()| match &progress {
                        Some(callback) => callback.call1(py, (done,)).map(drop),
                        None => Ok(()),
                    });
                    match outcome {
                        Ok(()) => true,
                        Err(err) => {
                            interrupt = Some(err);
                            false
                        }
                    }
                })
            };
            catch_panic(|| {
                self.inner
                    .encode_pooled(&texts, kind, batch_size, pool_factor, &mut on_batch)
            })
        });
        let embeddings = match (result, interrupt) {
            (_, Some(err)) => return Err(err),
            (Err(err), None) => return Err(to_py_err(err)),
            (Ok(embeddings), None) => embeddings,
        };
        embeddings
            .into_iter()
            .map(|e| {
                // The Vec becomes the array's buffer: no copy.
                let array = PyArray1::from_vec(py, e.data);
                Ok(array.reshape([e.rows, e.dim])?.into_any())
            })
            .collect()
    }

    /// Width of the output rows.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// The device the model runs on: `"cpu"`, `"cuda:N"` or `"metal:N"`.
    #[getter]
    fn device(&self) -> String {
        self.inner.device().name()
    }

    /// The arithmetic of the linear layers: `"float32"`, `"bfloat16"`, `"int8"` or `"float16"`.
    #[getter]
    fn precision(&self) -> &'static str {
        self.inner.precision().name()
    }

    /// The effective ColBERT settings, as a dict.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (key, value) in self.inner.settings().to_map(Case::Snake) {
            dict.set_item(key, py_value(py, &value)?)?;
        }
        Ok(dict)
    }

    /// Token ids and attention mask of one text as it is fed to the model.
    fn tokenize(
        &self,
        text: &Bound<'_, PyString>,
        is_query: bool,
    ) -> PyResult<(Vec<u32>, Vec<u32>)> {
        let text = &utf8(text, "text")?;
        let kind = if is_query {
            InputKind::Query
        } else {
            InputKind::Document
        };
        let t = catch_panic(|| self.inner.tokenize(text, kind)).map_err(to_py_err)?;
        Ok((t.ids, t.attention))
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring and pooling on numpy arrays. The arrays are borrowed, never copied: each one must be
// a C-contiguous, aligned 2-D float32 array (the Python wrappers in latebird.scores, .rank and
// .pooling convert other inputs once). The computation runs with the GIL released.

/// Renames the argument an engine error blames (and the names its message mentions), so that it
/// names the Python argument: `queries[3]` becomes `queries_embeddings[3]`, for example.
fn renamed(err: Error, rename: impl Fn(&str) -> String) -> Error {
    match err {
        Error::InvalidArgument { name, message } => Error::InvalidArgument {
            name: rename(&name),
            message: rename(&message),
        },
        other => other,
    }
}

/// The rows of a `[rows, dim]` float32 numpy array, without copying.
fn view<'a>(
    array: &'a PyReadonlyArray2<'_, f32>,
    name: &dyn Fn() -> String,
) -> PyResult<MatrixRef<'a>> {
    if !array.is_c_contiguous() {
        return Err(InvalidInputError::new_err(format!(
            "invalid argument `{}`: not a C-contiguous array; expected C order (np.ascontiguousarray)",
            name()
        )));
    }
    let shape = array.shape();
    let (rows, dim) = (shape[0], shape[1]);
    let data = array.as_slice().map_err(|e| {
        InvalidInputError::new_err(format!(
            "invalid argument `{}`: {e}; expected an aligned C-contiguous array",
            name()
        ))
    })?;
    Ok(MatrixRef::new(rows, dim, data))
}

fn views<'a>(arrays: &'a [PyReadonlyArray2<'_, f32>], name: &str) -> PyResult<Vec<MatrixRef<'a>>> {
    arrays
        .iter()
        .enumerate()
        .map(|(i, a)| view(a, &|| format!("{name}[{i}]")))
        .collect()
}

/// Replaces the name prefix `from` (`queries` in `queries[3]`) by `to` wherever it appears.
fn prefix(text: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = text.to_string();
    for (from, to) in pairs {
        out = out.replace(&format!("{from}["), &format!("{to}["));
    }
    out
}

/// An engine error about `queries[i]`/`documents[j]`, naming PyLate's arguments instead
/// (`queries_embeddings[i]`, `documents_embeddings[j]`).
fn embeddings_names(err: Error) -> PyErr {
    to_py_err(renamed(err, |s| {
        prefix(
            s,
            &[
                ("queries", "queries_embeddings"),
                ("documents", "documents_embeddings"),
            ],
        )
    }))
}

/// MaxSim scores of every query against every document: a float32 `[queries, documents]` array.
/// Errors name `queries_embeddings[i]` and `documents_embeddings[j]`.
#[pyfunction]
fn scores<'py>(
    py: Python<'py>,
    queries: Vec<PyReadonlyArray2<'py, f32>>,
    documents: Vec<PyReadonlyArray2<'py, f32>>,
) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let q = views(&queries, "queries_embeddings")?;
    let d = views(&documents, "documents_embeddings")?;
    let matrix = py
        .detach(|| catch_panic(|| latebird::scores(&q, &d)))
        .map_err(embeddings_names)?;
    // The Vec becomes the array's buffer: no copy.
    PyArray1::from_vec(py, matrix.data).reshape([matrix.queries, matrix.documents])
}

/// MaxSim score of one query against one document.
#[pyfunction]
fn maxsim(
    py: Python<'_>,
    query: PyReadonlyArray2<'_, f32>,
    document: PyReadonlyArray2<'_, f32>,
) -> PyResult<f32> {
    let q = view(&query, &|| "query".to_string())?;
    let d = view(&document, &|| "document".to_string())?;
    py.detach(|| catch_panic(|| latebird::maxsim(q, d)))
        .map_err(to_py_err)
}

/// For each query, its candidates' positions and scores, best first (stable for ties).
/// Errors name `queries_embeddings[i]` and `documents_embeddings[i][j]`.
#[pyfunction]
fn rerank(
    py: Python<'_>,
    queries: Vec<PyReadonlyArray2<'_, f32>>,
    documents: Vec<Vec<PyReadonlyArray2<'_, f32>>>,
) -> PyResult<Vec<Vec<(usize, f32)>>> {
    let q = views(&queries, "queries_embeddings")?;
    let d = documents
        .iter()
        .enumerate()
        .map(|(i, list)| views(list, &format!("documents_embeddings[{i}]")))
        .collect::<PyResult<Vec<_>>>()?;
    let ids: Vec<Vec<usize>> = d.iter().map(|list| (0..list.len()).collect()).collect();
    let ranked = py
        .detach(|| catch_panic(|| latebird::rerank(&q, &d, &ids)))
        .map_err(embeddings_names)?;
    Ok(ranked
        .into_iter()
        .map(|list| list.into_iter().map(|r| (r.id, r.score)).collect())
        .collect())
}

/// The `k` best documents for one query as (position, score), best first (stable for ties).
#[pyfunction]
fn top_k(
    py: Python<'_>,
    query: PyReadonlyArray2<'_, f32>,
    documents: Vec<PyReadonlyArray2<'_, f32>>,
    k: &Bound<'_, PyAny>,
) -> PyResult<Vec<(usize, f32)>> {
    let k = whole("k", k, 1)?;
    let q = view(&query, &|| "query".to_string())?;
    let d = views(&documents, "documents")?;
    let ranked = py
        .detach(|| catch_panic(|| latebird::top_k(q, &d, k)))
        .map_err(to_py_err)?;
    Ok(ranked.into_iter().map(|r| (r.id, r.score)).collect())
}

/// Hierarchical token pooling of each document (PyLate's `pool_embeddings_hierarchical`).
/// Errors name `documents_embeddings[i]`.
#[pyfunction]
fn pool_hierarchical<'py>(
    py: Python<'py>,
    documents: Vec<PyReadonlyArray2<'py, f32>>,
    pool_factor: &Bound<'py, PyAny>,
    protected_tokens: &Bound<'py, PyAny>,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let pool_factor = whole("pool_factor", pool_factor, 1)?;
    let protected_tokens = whole("protected_tokens", protected_tokens, 0)?;
    let d = views(&documents, "documents_embeddings")?;
    let pooled = py
        .detach(|| {
            catch_panic(|| {
                d.iter()
                    .enumerate()
                    .map(|(i, m)| {
                        latebird::pool_hierarchical(m, pool_factor, protected_tokens).map_err(|e| {
                            renamed(e, |s| {
                                if s == "embeddings" {
                                    format!("documents_embeddings[{i}]")
                                } else {
                                    s.to_string()
                                }
                            })
                        })
                    })
                    .collect::<latebird::Result<Vec<_>>>()
            })
        })
        .map_err(to_py_err)?;
    pooled
        .into_iter()
        .map(|e| {
            Ok(PyArray1::from_vec(py, e.data)
                .reshape([e.rows, e.dim])?
                .into_any())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The AWS Lambda contract (crates/service), for latebird.lambda_handler: the Python handler
// answers every event with the same library as the Rust function.

/// Writes to `output` (a new or empty folder) a copy of the model folder `model` with its
/// backbone's linear-layer weights in `precision` (`"int8"`); returns what was written.
#[pyfunction]
fn quantize<'py>(
    py: Python<'py>,
    model: std::path::PathBuf,
    output: std::path::PathBuf,
    precision: &Bound<'py, PyString>,
) -> PyResult<Bound<'py, PyDict>> {
    let name = utf8(precision, "precision")?;
    let precision = latebird::Precision::from_name(&name).ok_or_else(|| {
        InvalidInputError::new_err(format!(
            "invalid argument `precision`: is {name:?}; expected \"int8\""
        ))
    })?;
    let report = py
        .detach(|| catch_panic(|| latebird::quantize(&model, &output, precision)))
        .map_err(to_py_err)?;
    let dict = PyDict::new(py);
    dict.set_item("quantized", report.quantized)?;
    dict.set_item("bytes_before", report.bytes_before)?;
    dict.set_item("bytes_after", report.bytes_after)?;
    dict.set_item("copied", report.copied)?;
    dict.set_item("skipped", report.skipped)?;
    Ok(dict)
}

/// The Lambda function's model, loaded as the Rust function loads it at init: the folder
/// from `LATEBIRD_MODEL` (else `model/` in the package, else `/opt/model`) with the settings
/// of `LATEBIRD_SETTINGS`. Returns `(folder, model)`; bad settings are an
/// `InvalidInputError`, a model that cannot be loaded a `ModelLoadError`.
#[pyfunction]
fn lambda_model(py: Python<'_>) -> PyResult<(String, Model)> {
    let env = |name: &str| std::env::var(name).ok();
    let folder = latebird_service::model_folder(env);
    let options =
        latebird_service::options(env).map_err(|e| InvalidInputError::new_err(e.to_string()))?;
    let inner = py
        .detach(|| catch_panic(|| ColBERT::from_folder(&folder, options)))
        .map_err(to_py_err)?;
    Ok((folder, Model { inner }))
}

/// The request limits from `LATEBIRD_MAX_TEXTS` and `LATEBIRD_MAX_CHARS` (defaults 1024 and
/// 1000000): `(max_texts, max_chars)`. A value that is not an integer >= 1 is an
/// `InvalidInputError` naming the variable.
#[pyfunction]
fn request_limits() -> PyResult<(usize, usize)> {
    let limits = latebird_service::Limits::from_env()
        .map_err(|e| InvalidInputError::new_err(e.to_string()))?;
    Ok((limits.max_texts, limits.max_chars))
}

/// Answers one Lambda event, given as its JSON text, as the Rust function does: `(status,
/// answer as JSON text)`. A bad event, a request over the limits or an engine failure is a
/// JSON error answer, not an exception. Runs with the GIL released.
#[pyfunction]
fn handle_request(
    py: Python<'_>,
    model: &Bound<'_, Model>,
    event_json: &Bound<'_, PyString>,
    max_texts: &Bound<'_, PyAny>,
    max_chars: &Bound<'_, PyAny>,
) -> PyResult<(u16, String)> {
    let limits = latebird_service::Limits {
        max_texts: whole("max_texts", max_texts, 1)?,
        max_chars: whole("max_chars", max_chars, 1)?,
    };
    let event = utf8(event_json, "event_json")?;
    let model = &model.get().inner;
    let response = py.detach(|| {
        // The contract answers an engine panic itself; this guard covers the rest of it.
        catch_panic(|| Ok(latebird_service::handle(model, &limits, event.as_bytes())))
            .unwrap_or_else(|panic| {
                latebird_service::Response::error(&latebird_service::Error::Internal {
                    message: panic.to_string(),
                })
            })
    });
    Ok((response.status, response.body_json))
}

/// The 400 answer to an event that cannot be handed to [`handle_request`] (one the handler
/// cannot write as JSON text): `(400, answer as JSON text)` with `message`.
#[pyfunction]
fn refuse_request(message: &Bound<'_, PyString>) -> (u16, String) {
    let message = message.to_string_lossy().into_owned();
    let response =
        latebird_service::Response::error(&latebird_service::Error::InvalidRequest { message });
    (response.status, response.body_json)
}

/// Panics inside the engine on purpose, through the same guard as every entry point: the
/// tests use it to check that an engine bug reaches Python as a `LatebirdError` and leaves the
/// interpreter running. Not part of the API.
#[pyfunction]
fn _panic_for_tests(py: Python<'_>, message: &str) -> PyResult<()> {
    py.detach(|| catch_panic(|| -> latebird::Result<()> { panic!("{message}") }))
        .map_err(to_py_err)
}

#[pymodule]
fn _latebird(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(scores, m)?)?;
    m.add_function(wrap_pyfunction!(maxsim, m)?)?;
    m.add_function(wrap_pyfunction!(rerank, m)?)?;
    m.add_function(wrap_pyfunction!(top_k, m)?)?;
    m.add_function(wrap_pyfunction!(pool_hierarchical, m)?)?;
    m.add_function(wrap_pyfunction!(hub_download, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(lambda_model, m)?)?;
    m.add_function(wrap_pyfunction!(request_limits, m)?)?;
    m.add_function(wrap_pyfunction!(handle_request, m)?)?;
    m.add_function(wrap_pyfunction!(refuse_request, m)?)?;
    m.add_function(wrap_pyfunction!(_panic_for_tests, m)?)?;
    m.add("LatebirdError", py.get_type::<LatebirdError>())?;
    m.add("ModelLoadError", py.get_type::<ModelLoadError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add(
        "build_features",
        latebird::build_features()
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>(),
    )?;
    m.add("HubError", py.get_type::<HubError>())?;
    m.add(
        "RepositoryNotFoundError",
        py.get_type::<RepositoryNotFoundError>(),
    )?;
    m.add(
        "RevisionNotFoundError",
        py.get_type::<RevisionNotFoundError>(),
    )?;
    m.add("EntryNotFoundError", py.get_type::<EntryNotFoundError>())?;
    m.add("NotCachedError", py.get_type::<NotCachedError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
