//! The one error type of the contract.

/// Why an event gets no 200 answer, or why the limits cannot be read from the environment.
///
/// Each variant maps to the HTTP-style status and the error type of the JSON answer
/// ([`Error::status`], [`Error::error_type`]); the message is shown to the caller as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The event or request is malformed or inconsistent: 400, `InvalidRequest`.
    #[error("{message}")]
    InvalidRequest {
        /// What is wrong, naming the field at fault.
        message: String,
    },

    /// A size limit is exceeded (checked before anything is encoded): 413, `PayloadTooLarge`.
    #[error("{message}")]
    PayloadTooLarge {
        /// How large the request is, the limit and the setting that holds it.
        message: String,
    },

    /// The engine failed or panicked on a valid request: 500, `InternalError`.
    #[error("{message}")]
    Internal {
        /// The engine's message.
        message: String,
    },

    /// `LATEBIRD_SETTINGS` is not a JSON object of valid engine settings: the function is
    /// misconfigured, which fails its init; as an answer, 500 `InvalidConfiguration`.
    #[error("LATEBIRD_SETTINGS {message}")]
    InvalidSettings {
        /// What is wrong and what was expected.
        message: String,
    },

    /// A limit setting is not an integer >= 1 (`LATEBIRD_MAX_TEXTS=abc`): the function is
    /// misconfigured, which fails its init; as an answer, 500 `InvalidConfiguration`.
    #[error("{name}={value:?}: expected an integer >= 1")]
    InvalidLimit {
        /// The setting (environment variable).
        name: String,
        /// Its value.
        value: String,
    },
}

impl Error {
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidRequest {
            message: message.into(),
        }
    }

    /// The HTTP-style status of the answer: 400, 413 or 500.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidRequest { .. } => 400,
            Error::PayloadTooLarge { .. } => 413,
            Error::Internal { .. } | Error::InvalidLimit { .. } | Error::InvalidSettings { .. } => {
                500
            }
        }
    }

    /// The `error.type` of the answer: `InvalidRequest`, `PayloadTooLarge`, `InternalError`
    /// or `InvalidConfiguration`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } => "InvalidRequest",
            Error::PayloadTooLarge { .. } => "PayloadTooLarge",
            Error::Internal { .. } => "InternalError",
            Error::InvalidLimit { .. } | Error::InvalidSettings { .. } => "InvalidConfiguration",
        }
    }
}

impl From<latebird::Error> for Error {
    /// An engine error: the caller's fault (400) for bad input, else an internal error (500).
    fn from(err: latebird::Error) -> Self {
        match err.kind() {
            latebird::ErrorKind::Input => Error::invalid(err.to_string()),
            _ => Error::Internal {
                message: err.to_string(),
            },
        }
    }
}
