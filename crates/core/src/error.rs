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

    /// A file could not be written (the output of [`crate::quantize`]).
    #[error("{path}: could not be written: {source}")]
    Write {
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
    #[error(
        "{file}: unsupported architecture {found:?}; expected {}",
        crate::models::supported_architectures()
    )]
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

    /// The device asked for cannot be used: this build lacks its feature, or the machine its
    /// hardware or driver ([`crate::DeviceSpec::open`]).
    #[error("device {device}: {message}")]
    Device {
        /// The device's canonical name (`"cuda:0"`).
        device: String,
        /// What is missing and what was expected.
        message: String,
    },

    /// The caller's progress callback asked to stop.
    #[error("encoding was cancelled")]
    Cancelled,

    /// A tensor operation failed inside the engine (a bug, not a user error).
    #[error("internal tensor error: {0}")]
    Tensor(#[from] candle_core::Error),

    /// The engine panicked (a bug, not a user error); see [`catch_panic`].
    #[error("internal error: {message}; please report it at https://github.com/latebird/latebird/issues")]
    Internal {
        /// The panic's message.
        message: String,
    },
}

/// The class of an [`Error`], which is all a binding needs to pick its exception type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The model's files are missing, unreadable, malformed or inconsistent.
    Load,
    /// An argument or input given by the caller is out of range or inconsistent.
    Input,
    /// The device asked for is missing from this build or this machine.
    Device,
    /// The caller's progress callback asked to stop.
    Cancelled,
    /// A bug in the engine.
    Internal,
}

impl ErrorKind {
    /// The exception name the bindings use for this kind (`ModelLoadError`,
    /// `InvalidInputError`, `DeviceError`, `LatebirdError`).
    pub fn exception_name(self) -> &'static str {
        match self {
            ErrorKind::Load => "ModelLoadError",
            ErrorKind::Input => "InvalidInputError",
            ErrorKind::Device => "DeviceError",
            ErrorKind::Cancelled | ErrorKind::Internal => "LatebirdError",
        }
    }
}

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::MissingFile { .. }
            | Error::Io { .. }
            | Error::InvalidConfig { .. }
            | Error::UnsupportedArchitecture { .. }
            | Error::InvalidWeights { .. }
            | Error::InvalidTokenizer { .. } => ErrorKind::Load,
            Error::InvalidArgument { .. } | Error::Tokenization { .. } | Error::Write { .. } => {
                ErrorKind::Input
            }
            Error::Device { .. } => ErrorKind::Device,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Tensor(_) | Error::Internal { .. } => ErrorKind::Internal,
        }
    }

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

/// Runs `f`, turning a panic inside it into [`Error::Internal`] instead of unwinding into the
/// caller: a binding wraps each entry point with it so that a bug surfaces as an exception of
/// the host language and the process (a Python interpreter, a server) lives on. The engine's
/// models are immutable once loaded, so a model is still usable after a panic.
pub fn catch_panic<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => Err(Error::Internal {
            message: panic_message(payload.as_ref()),
        }),
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        "panic with a non-text payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let err = catch_panic::<()>(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        let text = err.to_string();
        assert!(text.starts_with("internal error: panic: boom 7"), "{text}");
        assert!(text.contains("please report"), "{text}");
        assert_eq!(catch_panic(|| Ok(3)).unwrap(), 3);
    }

    #[test]
    fn kinds_pick_the_exception_names() {
        let load = Error::config("config.json", "bad");
        assert_eq!(load.kind().exception_name(), "ModelLoadError");
        let input = Error::argument("batch_size", "is 0");
        assert_eq!(input.kind().exception_name(), "InvalidInputError");
        assert_eq!(Error::Cancelled.kind(), ErrorKind::Cancelled);
    }
}
