//! The one error type every use case returns.

/// A failure of a use case, carrying enough meaning for [`crate::http`] to pick the status.
///
/// Codes are stable `snake_case` strings the UI can switch on; messages are for people and
/// never contain internal detail (that goes to the log through [`Error::Internal`]).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The request is not well-formed: bad JSON syntax, bad query string, bad cursor (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The request is well-formed but its content breaks a rule (422).
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    /// No valid credentials came with the request (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller is known but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist for this tenant (404). Another tenant's ids land here too.
    #[error("{what} not found")]
    NotFound { what: &'static str },
    /// The write conflicts with existing state, e.g. a unique value already taken (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The body is larger than the route accepts (413).
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A channel provider failed or could not be reached (502).
    #[error("the {provider} API failed: {message}")]
    Upstream {
        provider: &'static str,
        message: String,
    },
    /// Something on our side failed (500). The text is logged, never sent to the client.
    /// A retry may help (throttling, timeouts, 5xx of a dependency).
    #[error("internal error: {0}")]
    Internal(String),
    /// The store refused a write for good (item over the size limit, key too long, …):
    /// writing the same thing again cannot help (500 on an agent route; a webhook stores a
    /// cut copy or acknowledges it, so the provider does not retry it forever). The text
    /// is logged, never sent to the client.
    #[error("store refused the write: {0}")]
    StoreRejected(String),
}

impl Error {
    /// A 422 with the given code.
    pub fn validation(code: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            code,
            message: message.into(),
        }
    }

    /// A 400 with the given code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 409 with the given code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// Whether the request itself is at fault (a 4xx): asking again the same way cannot
    /// help, unlike a store or provider failure.
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            Self::Internal(_) | Self::StoreRejected(_) | Self::Upstream { .. }
        )
    }

    /// The stable error code the API returns for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::Validation { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::Upstream { .. } => "upstream_error",
            Self::Internal(_) | Self::StoreRejected(_) => "internal_error",
        }
    }
}
