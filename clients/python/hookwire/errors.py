"""The SDK's errors: what the server answered, with its gRPC code, or why no answer came."""

from __future__ import annotations

import grpc


class HookwireError(Exception):
    """A call to hookwire failed.

    `code` is the gRPC status code (`grpc.StatusCode.INVALID_ARGUMENT`, `NOT_FOUND`, `UNAUTHENTICATED`, ...) and
    `message` what the server said; for `INVALID_ARGUMENT` the message starts with the field at fault
    (`group_id: ...`, or `colour: unknown field ...` for a webhook definition). A server that cannot be reached
    is `UNAVAILABLE`, as gRPC reports it. `code` is `None` when the failure did not come from gRPC, such as a
    session used after it ended.

    `str(error)` reads `<message> (<CODE_NAME>)`, as the Rust SDK prints it.
    """

    def __init__(self, code: grpc.StatusCode | None, message: str) -> None:
        super().__init__(code, message)
        self.code: grpc.StatusCode | None = code
        self.message: str = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> HookwireError:
        """Turns the error a gRPC call raised into a `HookwireError` with the same code and message."""
        # Every error a call raises is also a `grpc.Call`; an `RpcError` made by hand may not be.
        code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
        details = (error.details() if isinstance(error, grpc.Call) else None) or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return HookwireTimeoutError(details or "the call did not finish in time")
        return cls(code, details)

    @classmethod
    def from_device_error(cls, code_name: str, message: str) -> HookwireError:
        """Turns a session's `DeviceError` into the error the same failure would be on a unary call."""
        return cls(status_code_from_name(code_name), message)

    def __str__(self) -> str:
        if self.code is None:
            return self.message
        if not self.message:
            return self.code.name
        return f"{self.message} ({self.code.name})"

    def __repr__(self) -> str:
        code_name = None if self.code is None else self.code.name
        return f"{type(self).__name__}(code={code_name}, message={self.message!r})"

    def __reduce__(self) -> tuple:
        # Subclasses take other constructor arguments, so errors are rebuilt field by field (pickle,
        # multiprocessing).
        return (_rebuild_error, (type(self), self.code, self.message))


class HookwireTimeoutError(HookwireError, TimeoutError):
    """A call, or a wait on a stream, did not finish within the time it was given.

    Its `code` is `grpc.StatusCode.DEADLINE_EXCEEDED` whether the deadline was gRPC's or a local wait's, and it is
    also a built-in `TimeoutError`. Timing out a wait on a stream loses nothing: a message that arrives later is
    kept for the next read.
    """

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def _rebuild_error(cls: type[HookwireError], code: grpc.StatusCode | None, message: str) -> HookwireError:
    error = cls.__new__(cls)
    HookwireError.__init__(error, code, message)
    return error


def status_code_from_name(name: str) -> grpc.StatusCode:
    """Returns the code named `INVALID_ARGUMENT` etc., ignoring case; `UNKNOWN` for a name that is not a code."""
    try:
        return grpc.StatusCode[name.strip().upper()]
    except KeyError:
        return grpc.StatusCode.UNKNOWN
