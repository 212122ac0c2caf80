//! hookwire's gRPC contract: the code generated from `proto/hookwire/v1/*.proto` (the comments there are the
//! documentation of every message), the descriptor set that gRPC reflection serves, and [`ErrorCode`], the one
//! mapping from hookwire's error codes to `tonic::Code`.

pub mod codec;
pub mod templates;

/// Generated from `proto/hookwire/v1/*.proto`; do not edit.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("hookwire.v1");
}

/// The encoded `FileDescriptorSet` of the contract, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hookwire_descriptor");

/// What kind of failure an error is, independent of transport. Every error type of hookwire says its code, and
/// this is the only place a code becomes a `tonic::Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed; the message names the field at fault.
    InvalidArgument,
    /// The thing named does not exist (or is not visible to the caller).
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// No token, or a token that is not valid.
    Unauthenticated,
    /// A valid token that may not do this.
    PermissionDenied,
    /// A quota or size limit was hit.
    ResourceExhausted,
    /// A dependency (the database) is down; retrying later may succeed.
    Unavailable,
    /// What the call waits for did not happen in time (a test delivery without an answer).
    DeadlineExceeded,
    /// A bug or an unexpected condition; details are logged, not returned.
    Internal,
}

impl ErrorCode {
    /// Returns the gRPC status code for this error code.
    pub fn grpc_code(self) -> tonic::Code {
        match self {
            ErrorCode::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorCode::NotFound => tonic::Code::NotFound,
            ErrorCode::AlreadyExists => tonic::Code::AlreadyExists,
            ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorCode::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorCode::Unavailable => tonic::Code::Unavailable,
            ErrorCode::DeadlineExceeded => tonic::Code::DeadlineExceeded,
            ErrorCode::Internal => tonic::Code::Internal,
        }
    }

    /// Returns the name of the gRPC code (`INVALID_ARGUMENT`), as device errors on a stream carry it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::AlreadyExists => "ALREADY_EXISTS",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::PermissionDenied => "PERMISSION_DENIED",
            ErrorCode::ResourceExhausted => "RESOURCE_EXHAUSTED",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::DeadlineExceeded => "DEADLINE_EXCEEDED",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Builds a `tonic::Status` with this code and a message.
    pub fn status(self, message: impl Into<String>) -> tonic::Status {
        tonic::Status::new(self.grpc_code(), message)
    }
}
