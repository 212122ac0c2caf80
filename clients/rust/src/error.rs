//! The SDK's one error type, and the table between gRPC code names (`INVALID_ARGUMENT`) and `tonic::Code`.

use std::fmt;

use tonic::Code;

/// What can go wrong when talking to a hookwire server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection to the server could not be made or was lost.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    /// The server refused or failed a request. On a device session, a `DeviceError` becomes this too, with the
    /// code named by its `code` string.
    #[error("{}", StatusDisplay(.0))]
    Status(tonic::Status),
    /// The stream ended: the server closed it, or the session's sending side is gone.
    #[error("the stream ended")]
    Closed,
    /// A call did not finish within the time given to [`with_timeout`](crate::with_timeout).
    #[error("timed out")]
    Timeout,
    /// The endpoint is not `http://host:port`, `https://host:port` or `host:port`.
    #[error("invalid endpoint {0}")]
    InvalidEndpoint(String),
    /// The token cannot be sent as gRPC metadata: it must be visible ASCII.
    #[error("invalid token: it must be visible ASCII (no spaces or control characters)")]
    InvalidToken,
}

impl Error {
    /// Returns the gRPC code the server answered with, or `None` when the failure did not come from the server.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Status(status) => Some(status.code()),
            Error::Transport(_) | Error::Closed | Error::Timeout | Error::InvalidEndpoint(_) | Error::InvalidToken => {
                None
            }
        }
    }
}

// Not `#[from]` on the variant: that would also make the `Status` the error's source, and reporters that print
// the source chain would repeat its message in tonic's verbose `Debug`-like format.
impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Error::Status(status)
    }
}

/// A `Result` whose error is the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shows a status as `<message> (<CODE_NAME>)`, or only the code name when the message is empty.
struct StatusDisplay<'a>(&'a tonic::Status);

impl fmt::Display for StatusDisplay<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code_name = code_name(self.0.code());
        if self.0.message().is_empty() {
            formatter.write_str(code_name)
        } else {
            write!(formatter, "{} ({code_name})", self.0.message())
        }
    }
}

/// Every gRPC code with the name the gRPC specification gives it; device errors carry these names.
const CODE_NAMES: [(Code, &str); 17] = [
    (Code::Ok, "OK"),
    (Code::Cancelled, "CANCELLED"),
    (Code::Unknown, "UNKNOWN"),
    (Code::InvalidArgument, "INVALID_ARGUMENT"),
    (Code::DeadlineExceeded, "DEADLINE_EXCEEDED"),
    (Code::NotFound, "NOT_FOUND"),
    (Code::AlreadyExists, "ALREADY_EXISTS"),
    (Code::PermissionDenied, "PERMISSION_DENIED"),
    (Code::ResourceExhausted, "RESOURCE_EXHAUSTED"),
    (Code::FailedPrecondition, "FAILED_PRECONDITION"),
    (Code::Aborted, "ABORTED"),
    (Code::OutOfRange, "OUT_OF_RANGE"),
    (Code::Unimplemented, "UNIMPLEMENTED"),
    (Code::Internal, "INTERNAL"),
    (Code::Unavailable, "UNAVAILABLE"),
    (Code::DataLoss, "DATA_LOSS"),
    (Code::Unauthenticated, "UNAUTHENTICATED"),
];

/// Returns the specification's name of a code: `Code::InvalidArgument` is `INVALID_ARGUMENT`.
pub(crate) fn code_name(code: Code) -> &'static str {
    CODE_NAMES.iter().find(|(known_code, _)| *known_code == code).map_or("UNKNOWN", |(_, name)| name)
}

/// Returns the code a name stands for, ignoring case; `Code::Unknown` for a name that is not a gRPC code.
pub(crate) fn code_from_name(name: &str) -> Code {
    CODE_NAMES
        .iter()
        .find(|(_, known_name)| known_name.eq_ignore_ascii_case(name))
        .map_or(Code::Unknown, |(code, _)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_name_maps_back_to_its_code() {
        for (code, name) in CODE_NAMES {
            assert_eq!(code_from_name(name), code);
            assert_eq!(code_name(code), name);
        }
    }

    #[test]
    fn the_table_lists_every_code_once() {
        for (index, (code, _)) in CODE_NAMES.iter().enumerate() {
            assert_eq!(*code as usize, index);
        }
    }

    #[test]
    fn code_names_are_read_ignoring_case() {
        assert_eq!(code_from_name("resource_exhausted"), Code::ResourceExhausted);
        assert_eq!(code_from_name("Unavailable"), Code::Unavailable);
    }

    #[test]
    fn an_unknown_code_name_is_read_as_unknown() {
        assert_eq!(code_from_name("TEAPOT"), Code::Unknown);
        assert_eq!(code_from_name(""), Code::Unknown);
    }

    #[test]
    fn a_status_displays_its_message_then_its_code_name() {
        let error = Error::from(tonic::Status::invalid_argument("group_id: grp_x is not a group id"));
        assert_eq!(error.to_string(), "group_id: grp_x is not a group id (INVALID_ARGUMENT)");
        assert_eq!(error.code(), Some(Code::InvalidArgument));
    }

    #[test]
    fn a_status_without_a_message_displays_its_code_name() {
        let error = Error::from(tonic::Status::unavailable(""));
        assert_eq!(error.to_string(), "UNAVAILABLE");
    }

    #[test]
    fn only_server_answers_have_a_code() {
        assert_eq!(Error::Closed.code(), None);
        assert_eq!(Error::Timeout.code(), None);
    }
}
