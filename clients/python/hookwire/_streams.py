"""The thread plumbing of streaming calls: a background reader into a bounded buffer (`Inbox`) so that waits can
time out, waiting for a stream to open (`open_stream`), iterating a stream's events (`EventIterator`), and deadlines
in seconds."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Callable

import grpc

from hookwire._connection import Closing
from hookwire.errors import HookwireError, HookwireTimeoutError
from hookwire.v1 import common_pb2

# How many messages a stream keeps unread before it stops reading from the server; the server then queues them
# and, past its own limit, drops events and reports how many with an `Overflow`.
INCOMING_QUEUE_CAPACITY = 1024


class EventIterator(Closing):
    """A stream of events that iterates: each step is `next_event()`, until it returns `None` (the stream ended)."""

    def next_event(self, timeout: float | None = None) -> common_pb2.Event | None:
        raise NotImplementedError

    def __iter__(self) -> Iterator[common_pb2.Event]:
        return self

    def __next__(self) -> common_pb2.Event:
        event = self.next_event()
        if event is None:
            raise StopIteration
        return event


class Inbox:
    """Reads a response stream on a background thread into a bounded buffer, so that waits can time out.

    When the buffer is full the thread stops reading, which lets gRPC's flow control hold the server back (the
    server then counts what it drops). The stream's end, or its error, is kept and given once the buffer is
    drained.
    """

    def __init__(self, call: Any, on_end: Callable[[], None] | None = None) -> None:
        self._call = call
        self._on_end = on_end
        self._items: deque[Any] = deque()
        self._condition = threading.Condition()
        self._ended = False
        self._error: grpc.RpcError | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._read, name="hookwire-stream-reader", daemon=True)
        self._thread.start()

    @property
    def has_ended(self) -> bool:
        """Whether the server has ended the stream, or `stop` was called."""
        return self._ended or self._stopping

    def get(self, timeout: float | None) -> Any:
        """Returns the next message, `None` at the end of the stream; raises the error that ended it (once)."""
        deadline = deadline_after(timeout)
        with self._condition:
            while not self._items and not self._ended and not self._stopping:
                remaining = time_left(deadline)
                if remaining is not None and remaining <= 0:
                    raise HookwireTimeoutError(f"nothing arrived within {timeout:.3g} s")
                self._condition.wait(remaining)
            if self._stopping:
                return None
            if self._items:
                message = self._items.popleft()
                self._condition.notify_all()
                return message
            error, self._error = self._error, None
        if error is not None:
            raise HookwireError.from_rpc_error(error)
        return None

    def stop(self) -> None:
        """Stops reading and cancels the call; `get` returns `None` from now on."""
        with self._condition:
            self._stopping = True
            self._condition.notify_all()
        self._call.cancel()

    def _read(self) -> None:
        error: grpc.RpcError | None = None
        try:
            for message in self._call:
                with self._condition:
                    while len(self._items) >= INCOMING_QUEUE_CAPACITY and not self._stopping:
                        self._condition.wait()
                    if self._stopping:
                        break
                    self._items.append(message)
                    self._condition.notify_all()
        except grpc.RpcError as rpc_error:
            error = rpc_error
        finally:
            with self._condition:
                self._ended = True
                self._error = error
                self._condition.notify_all()
            if self._on_end is not None:
                self._on_end()


def open_stream(call: Any, timeout: float | None, on_end: Callable[[], None] | None = None) -> Inbox:
    """Waits until the server has answered a streaming call's headers (it has then set the stream up) and
    returns the call's inbox; raises the call's error when the server refused it instead."""
    opened = threading.Event()

    def wait_for_headers() -> None:
        # `initial_metadata` returns once the headers came, or once a refusal ended the call.
        call.initial_metadata()
        opened.set()

    call.add_done_callback(lambda _call: opened.set())
    threading.Thread(target=wait_for_headers, name="hookwire-stream-opener", daemon=True).start()
    if not opened.wait(timeout):
        call.cancel()
        raise HookwireTimeoutError(f"the server did not answer within {timeout:.3g} s")
    raise_if_refused(call)
    return Inbox(call, on_end)


def raise_if_refused(call: Any) -> None:
    if not call.done():
        return
    code = call.code()
    if code != grpc.StatusCode.OK:
        details = call.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise HookwireTimeoutError(details or "the call did not finish in time")
        raise HookwireError(code, details)


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def time_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
