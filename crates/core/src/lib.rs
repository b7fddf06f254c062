//! latebird: PyLate-exact late-interaction (ColBERT) encoders on Candle.
//!
//! Load a PyLate model folder (or its files' bytes) and turn texts into one
//! L2-normalised token-embedding matrix each, exactly as PyLate's `encode()` does.
//!
//! ```no_run
//! use latebird::{ColBERT, InputKind, Options};
//!
//! let model = ColBERT::from_folder("tests/models/minilm-colbert", Options::default())?;
//! let queries = model.encode(&["what is late interaction?"], InputKind::Query)?;
//! let documents = model.encode(&["ColBERT scores with MaxSim."], InputKind::Document)?;
//! assert_eq!(queries[0].dim, documents[0].dim);
//! # Ok::<(), latebird::Error>(())
//! ```
#![deny(missing_docs)]

// MKL's static libraries, linked when the `mkl` feature is on (see models/kernels/blas.rs).
#[cfg(feature = "mkl")]
extern crate intel_mkl_src;

mod config;
mod dense;
mod device;
mod embeddings;
mod encoder;
mod error;
mod models;
mod overrides;
mod pool;
mod precision;
mod quantize;
mod score;
mod source;
mod tokenize;
mod weights;

pub use candle_core::Device;
pub use config::{ColbertSettings, DEFAULT_SKIPLIST};
pub use device::{build_features, DeviceSpec};
pub use embeddings::{AsMatrix, Embeddings, MatrixRef};
pub use encoder::{ColBERT, Options};
pub use error::{catch_panic, panic_message, Error, ErrorKind, Result};
pub use overrides::{Case, Overrides};
pub use pool::{pool, pool_hierarchical};
pub use precision::Precision;
pub use quantize::{quantize, QuantizeReport};
pub use score::{maxsim, rerank, scores, top_k, Ranked, ScoreMatrix};
pub use tokenize::{InputKind, TokenizedText};
