//! The kernel's error: what an admin or device call can fail with. Each variant says its code; the code becomes a
//! gRPC status in one place (`hookwire_proto::ErrorCode::grpc_code`). Internal detail is logged, not returned:
//! a storage failure reaches the client as a fixed text per code and an error id ([`new_error_id`]), and the
//! server log has the cause under that id.

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

impl From<hookwire_actors::domain::ids::IdError> for KernelError {
    fn from(error: hookwire_actors::domain::ids::IdError) -> Self {
        KernelError::InvalidArgument(error.to_string())
    }
}

/// Makes a fresh error id (`err_` and 32 hex digits, time-ordered), which ties what a client is told to the log
/// line that holds the cause.
pub fn new_error_id() -> String {
    format!("err_{}", uuid::Uuid::now_v7().simple())
}

/// The fixed text a client gets for a storage failure of `code`, whatever the database said.
pub fn store_error_text(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unavailable => "storage unavailable, retry later",
        ErrorCode::AlreadyExists => "already exists: a record with the same key is stored",
        _ => "internal error",
    }
}

/// Logs a storage failure's cause under a fresh error id and returns the id.
pub fn log_store_error(error: &StoreError) -> String {
    let error_id = new_error_id();
    match error.code() {
        ErrorCode::Unavailable => tracing::warn!(%error_id, cause = %error, "storage unavailable"),
        ErrorCode::AlreadyExists => tracing::info!(%error_id, cause = %error, "storage refused a duplicate"),
        _ => tracing::error!(%error_id, cause = %error, "storage error"),
    }
    error_id
}

impl From<KernelError> for tonic::Status {
    fn from(error: KernelError) -> Self {
        let code = error.code();
        match &error {
            KernelError::Store(store) => {
                let error_id = log_store_error(store);
                code.status(format!("{} (error id {error_id})", store_error_text(code)))
            }
            _ => code.status(error.to_string()),
        }
    }
}

/// Parses an id field, naming the field when it is not an id of the right kind.
pub fn parse_id<T>(
    field: &str,
    value: &str,
    parse: fn(&str) -> Result<T, hookwire_actors::domain::ids::IdError>,
) -> Result<T, KernelError> {
    parse(value).map_err(|error| KernelError::InvalidArgument(format!("{field}: {error}")))
}
