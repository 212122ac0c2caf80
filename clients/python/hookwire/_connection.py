"""What both clients share: reading an endpoint, opening the channel, the metadata that carries the token, making
a unary call, and closing as a context manager."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

import grpc

from hookwire._version import __version__
from hookwire.errors import HookwireError

Metadata = tuple[tuple[str, str], ...]

USER_AGENT = f"hookwire-python/{__version__}"

Response = TypeVar("Response")
_Self = TypeVar("_Self", bound="Closing")


@dataclass(frozen=True)
class Endpoint:
    """A server address as gRPC wants it (`host:port`, IPv6 hosts bracketed) and whether it takes TLS."""

    target: str
    is_https: bool


def parse_endpoint(text: str) -> Endpoint:
    """Reads `http://host:port`, `https://host:port` or a bare `host:port` (taken as `http://`).

    The port defaults to 80 for `http://` and 443 for `https://`. Raises `ValueError` naming the endpoint and
    what is wrong with it, before any network traffic.
    """
    text = text.strip()
    if not text:
        raise ValueError("invalid endpoint ``: expected http://host:port, https://host:port or host:port")

    def invalid(reason: str) -> ValueError:
        return ValueError(f"invalid endpoint `{text}`: {reason}")

    with_scheme = text if "://" in text else f"http://{text}"
    try:
        parts = urlsplit(with_scheme)
    except ValueError as error:
        raise invalid(str(error)) from None
    if parts.scheme not in ("http", "https"):
        raise invalid("the scheme must be http or https")
    if "@" in parts.netloc:
        raise invalid("credentials in the endpoint are not supported: pass a token")
    if not parts.hostname:
        raise invalid("no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise invalid("an endpoint has no path or query: give only scheme, host and port")
    try:
        port = parts.port
    except ValueError:
        raise invalid("the port must be a number from 0 to 65535") from None
    # `urlsplit` takes `host:` as "no port"; a colon with nothing after it is a mistake, not a default.
    if port is None and parts.netloc.endswith(":"):
        raise invalid("the port must be a number from 0 to 65535")
    is_https = parts.scheme == "https"
    if port is None:
        port = 443 if is_https else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Endpoint(target=f"{host}:{port}", is_https=is_https)


def bearer_metadata(token: str) -> Metadata:
    """Returns the metadata that authenticates every call: `authorization: Bearer <token>`.

    Raises `ValueError` for a token that is not visible ASCII, which the server could not read back as sent.
    """
    if not token or not all("!" <= character <= "~" for character in token):
        raise ValueError("invalid token: it must be visible ASCII (no spaces or control characters)")
    return (("authorization", f"Bearer {token}"),)


def open_channel(endpoint: str) -> grpc.Channel:
    """Opens a channel to `endpoint`; TLS, verified against the system's roots, for `https://`.

    gRPC channels connect lazily: a server that cannot be reached fails the first call with `UNAVAILABLE`.
    """
    parsed = parse_endpoint(endpoint)
    options = [("grpc.primary_user_agent", USER_AGENT)]
    if parsed.is_https:
        return grpc.secure_channel(parsed.target, grpc.ssl_channel_credentials(), options=options)
    return grpc.insecure_channel(parsed.target, options=options)


def unary(method: Callable[..., Response], request: Any, metadata: Metadata, timeout: float | None) -> Response:
    try:
        return method(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        # `from None`: the error already holds the server's code and message, and gRPC's own exception would
        # repeat them in a longer form.
        raise HookwireError.from_rpc_error(error) from None


class Closing:
    """A context manager that calls the object's `close` on leaving the `with` block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
