//! The kernel's error: what an admin or device call can fail with. Each variant says its code; the code becomes a
//! gRPC status in one place (`hookwire_proto::ErrorCode::grpc_code`). Internal detail is logged, not returned.

use crate::store::StoreError;
use hookwire_proto::ErrorCode;

/// An error of a kernel operation.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Bad input; the message starts with the field at fault.
    #[error("{0}")]
    InvalidArgument(String),
    /// Nothing of that id (visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Credentials that may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// What the call waited for did not happen in time.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// A storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KernelError {
    /// The error's code.
    pub fn code(&self) -> ErrorCode {
        match self {
            KernelError::InvalidArgument(_) => ErrorCode::InvalidArgument,
            KernelError::NotFound(_) => ErrorCode::NotFound,
            KernelError::Unauthenticated(_) => ErrorCode::Unauthenticated,
            KernelError::PermissionDenied(_) => ErrorCode::PermissionDenied,
            KernelError::DeadlineExceeded(_) => ErrorCode::DeadlineExceeded,
            KernelError::Store(error) => error.code(),
        }
    }
}

impl From<hookwire_actors::ids::IdError> for KernelError {
    fn from(error: hookwire_actors::ids::IdError) -> Self {
        KernelError::InvalidArgument(error.to_string())
    }
}

impl From<KernelError> for tonic::Status {
    fn from(error: KernelError) -> Self {
        let code = error.code();
        match code {
            ErrorCode::Internal => {
                tracing::error!(%error, "internal error");
                code.status("internal error; see the server log")
            }
            ErrorCode::Unavailable => {
                tracing::warn!(%error, "storage unavailable");
                code.status("storage unavailable, retry later")
            }
            _ => code.status(error.to_string()),
        }
    }
}

/// Parses an id field, naming the field when it is not an id of the right kind.
pub fn parse_id<T>(
    field: &str,
    value: &str,
    parse: fn(&str) -> Result<T, hookwire_actors::ids::IdError>,
) -> Result<T, KernelError> {
    parse(value).map_err(|error| KernelError::InvalidArgument(format!("{field}: {error}")))
}
