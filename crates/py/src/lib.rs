//! Python adapter of latebird: argument conversion, GIL release, numpy out, exceptions.
//! No engine logic lives here.

use latebird::{ColBERT, Device, Error, InputKind, Options};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyDict;

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

fn to_py_err(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::MissingFile { .. }
        | Error::Io { .. }
        | Error::InvalidConfig { .. }
        | Error::UnsupportedArchitecture { .. }
        | Error::InvalidWeights { .. }
        | Error::InvalidTokenizer { .. } => ModelLoadError::new_err(message),
        Error::InvalidArgument { .. } | Error::Tokenization { .. } => {
            InvalidInputError::new_err(message)
        }
        _ => LatebirdError::new_err(message),
    }
}

fn parse_device(device: &str) -> PyResult<Device> {
    match device {
        "cpu" => Ok(Device::Cpu),
        "cuda" | "cuda:0" => Device::new_cuda(0).map_err(|e| {
            InvalidInputError::new_err(format!(
                "device {device:?} is not available: {e}; this build supports \"cpu\" (rebuild with the cuda feature for CUDA)"
            ))
        }),
        "mps" | "metal" => Device::new_metal(0).map_err(|e| {
            InvalidInputError::new_err(format!(
                "device {device:?} is not available: {e}; this build supports \"cpu\" (rebuild with the metal feature for Metal)"
            ))
        }),
        other => Err(InvalidInputError::new_err(format!(
            "unknown device {other:?}; expected \"cpu\", \"cuda\" or \"mps\""
        ))),
    }
}

/// A loaded model (the engine behind `latebird.ColBERT`).
#[pyclass(module = "latebird._latebird", frozen)]
struct Model {
    inner: ColBERT,
}

#[pymethods]
impl Model {
    #[new]
    #[pyo3(signature = (path, *, device="cpu", query_length=None, document_length=None, query_prefix=None, document_prefix=None, attend_to_expansion_tokens=None, do_query_expansion=None, skiplist_words=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        device: &str,
        query_length: Option<usize>,
        document_length: Option<usize>,
        query_prefix: Option<String>,
        document_prefix: Option<String>,
        attend_to_expansion_tokens: Option<bool>,
        do_query_expansion: Option<bool>,
        skiplist_words: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let options = Options {
            query_length,
            document_length,
            query_prefix,
            document_prefix,
            do_query_expansion,
            attend_to_expansion_tokens,
            skiplist_words,
            device: parse_device(device)?,
            ..Options::default()
        };
        let inner = py
            .detach(|| ColBERT::from_folder(&path, options))
            .map_err(to_py_err)?;
        Ok(Model { inner })
    }

    /// Encodes `texts` into one float32 array `[n_tokens, dim]` each. `progress`, if given,
    /// is called with the number of texts done after each batch. Ctrl-C stops between batches.
    #[pyo3(signature = (texts, is_query, batch_size, pool_factor=1, progress=None))]
    fn encode<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        is_query: bool,
        batch_size: usize,
        pool_factor: usize,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
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
            self.inner
                .encode_pooled(&texts, kind, batch_size, pool_factor, &mut on_batch)
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

    /// The effective ColBERT settings, as a dict.
    #[getter]
    fn settings<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.settings();
        let dict = PyDict::new(py);
        dict.set_item("query_prefix", &s.query_prefix)?;
        dict.set_item("document_prefix", &s.document_prefix)?;
        dict.set_item("query_length", s.query_length)?;
        dict.set_item("document_length", s.document_length)?;
        dict.set_item("do_query_expansion", s.do_query_expansion)?;
        dict.set_item("attend_to_expansion_tokens", s.attend_to_expansion_tokens)?;
        dict.set_item("skiplist_words", &s.skiplist_words)?;
        Ok(dict)
    }

    /// Token ids and attention mask of one text as it is fed to the model.
    fn tokenize(&self, text: &str, is_query: bool) -> PyResult<(Vec<u32>, Vec<u32>)> {
        let kind = if is_query {
            InputKind::Query
        } else {
            InputKind::Document
        };
        let t = self.inner.tokenize(text, kind).map_err(to_py_err)?;
        Ok((t.ids, t.attention))
    }
}

#[pymodule]
fn _latebird(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Model>()?;
    m.add("LatebirdError", py.get_type::<LatebirdError>())?;
    m.add("ModelLoadError", py.get_type::<ModelLoadError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
