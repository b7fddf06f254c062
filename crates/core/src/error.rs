//! The one error type of the engine.

use std::path::PathBuf;

/// Everything that can go wrong while loading a model or encoding texts.
///
/// Each variant names the file (or argument) at fault and what was expected, so
/// that bindings can show the message as it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the model needs is not in the folder or the file map.
    #[error("{file}: missing from the model ({expected})")]
    MissingFile {
        /// The file name, relative to the model folder.
        file: String,
        /// Why the file is needed.
        expected: String,
    },

    /// A file could not be read from disk.
    #[error("{path}: could not be read: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A configuration file is not valid JSON or lacks what it must say.
    #[error("{file}: {message}")]
    InvalidConfig {
        /// The file name, relative to the model folder.
        file: String,
        /// What was wrong and what was expected.
        message: String,
    },

    /// The backbone architecture is not one latebird implements.
    #[error("{file}: unsupported architecture {found:?}; expected one of BertModel, BertForMaskedLM, ModernBertModel, ModernBertForMaskedLM (or model_type \"bert\" / \"modernbert\")")]
    UnsupportedArchitecture {
        /// The file that names the architecture.
        file: String,
        /// What it named.
        found: String,
    },

    /// A safetensors file is truncated, corrupt, lacks a tensor or holds one of the wrong shape or type.
    #[error("{file}: {message}")]
    InvalidWeights {
        /// The safetensors file, relative to the model folder.
        file: String,
        /// What was wrong and what was expected.
        message: String,
    },

    /// The tokenizer cannot be loaded, or lacks a token the model needs (prefix, mask).
    #[error("{file}: {message}")]
    InvalidTokenizer {
        /// The tokenizer file.
        file: String,
        /// What was wrong and what was expected.
        message: String,
    },

    /// An argument given by the caller is out of range or inconsistent.
    #[error("invalid argument `{name}`: {message}")]
    InvalidArgument {
        /// The argument's name.
        name: String,
        /// What was wrong and what was expected.
        message: String,
    },

    /// Tokenizing an input text failed.
    #[error("text {index}: could not be tokenized: {message}")]
    Tokenization {
        /// Position of the text in the input.
        index: usize,
        /// The tokenizer's message.
        message: String,
    },

    /// The caller's progress callback asked to stop.
    #[error("encoding was cancelled")]
    Cancelled,

    /// A tensor operation failed inside the engine (a bug, not a user error).
    #[error("internal tensor error: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(file: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            file: file.into(),
            message: message.into(),
        }
    }

    pub(crate) fn weights(file: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidWeights {
            file: file.into(),
            message: message.into(),
        }
    }

    pub(crate) fn argument(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name: name.into(),
            message: message.into(),
        }
    }
}
