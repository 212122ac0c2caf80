"""`DeviceClient`: publishes as one device with its device token, one event at a time or over a long-lived
`DeviceSession` that also receives the events the device subscribed to.

Every method is one gRPC call, or a wait on the session's stream, and raises `HookwireError` with the server's
code and message when it fails. Messages are the generated types of `hookwire.v1` (`device_pb2.PublishAck`,
`common_pb2.Event`, ...), documented in `proto/hookwire/v1/device.proto`.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import grpc

from hookwire._connection import Closing, Metadata, bearer_metadata, open_channel, unary
from hookwire._streams import EventIterator, deadline_after, open_stream, time_left
from hookwire.errors import HookwireError
from hookwire.v1 import common_pb2, device_pb2, device_pb2_grpc

# How many messages a session queues for sending before its send methods wait.
OUTGOING_QUEUE_CAPACITY = 64


class DeviceClient(Closing):
    """A client of the device service, authenticated with a device token; the token also tells the server which
    device this is.

    `endpoint` and `timeout` are as for `AdminClient`. `publish` sends one event at a time; `session()` opens the
    long-lived `Connect` stream, for devices that publish often or receive events.
    """

    def __init__(self, endpoint: str, device_token: str, *, timeout: float | None = None) -> None:
        self._metadata = bearer_metadata(device_token)
        self._timeout = timeout
        self._channel = open_channel(endpoint)
        self._device_service = device_pb2_grpc.DeviceServiceStub(self._channel)

    def publish(self, name: str, data: str = "", *, ttl: int = 0) -> device_pb2.PublishAck:
        """Publishes one event with the unary `Publish` call and returns its ack once it is durable.

        The ack carries the event's id (`event_id`, `evt_...`) and how many webhooks matched
        (`num_deliveries`). A refused event raises `HookwireError`: `INVALID_ARGUMENT` for a bad name,
        `RESOURCE_EXHAUSTED` for data over the server's limit.
        """
        request = device_pb2.PublishRequest(name=name, data=data, ttl=ttl)
        return unary(self._device_service.Publish, request, self._metadata, self._timeout)

    def session(self) -> DeviceSession:
        """Opens a `Connect` session and returns once the server has accepted it.

        An unknown token raises `HookwireError` with `UNAUTHENTICATED` here. Use the session as a context
        manager, or close it.
        """
        return DeviceSession(self._device_service, self._metadata, self._timeout)

    def close(self) -> None:
        """Closes the connection, and with it the sessions opened from this client."""
        self._channel.close()


class DeviceSession(EventIterator):
    """A device's `Connect` session: publishes, subscriptions and pings go out; acks, errors, pongs and the
    events subscribed to come in.

    Messages that arrive while `publish` waits for its ack are kept, in order, for `next_message` and
    `next_event`. The sending methods (`subscribe`, `ping`, `send_publish`, ...) may be called from any thread;
    read (`publish`, `next_message`, `next_event`, iteration) from one thread at a time. Iterating yields the
    events subscribed to until the session ends. Closing (or leaving the `with` block) ends the session.
    """

    def __init__(
        self,
        device_service: device_pb2_grpc.DeviceServiceStub,
        metadata: Metadata,
        open_timeout: float | None,
    ) -> None:
        self._outgoing: queue.Queue[Any] = queue.Queue(maxsize=OUTGOING_QUEUE_CAPACITY)
        self._seqs = itertools.count(1)
        self._seq_lock = threading.Lock()
        self._buffered: deque[device_pb2.KernelMessage] = deque()
        self._num_dropped = 0
        self._closed = False
        try:
            call = device_service.Connect(self._requests(), metadata=metadata)
        except grpc.RpcError as error:
            raise HookwireError.from_rpc_error(error) from None
        # Whenever the session ends (refused here, ended by the server, or closed), the request stream is ended
        # too, so that gRPC's thread that reads it does not wait for a message forever.
        try:
            self._inbox = open_stream(call, open_timeout, on_end=self._end_requests)
        except BaseException:
            self._end_requests()
            raise

    # Sending.

    def subscribe(self, prefix: str = "") -> None:
        """Starts receiving the group's events whose name starts with `prefix` (empty: every event the device
        may see). The server does not confirm a subscription; a refused one comes back as an error from
        `next_event`."""
        self._send(device_pb2.DeviceMessage(subscribe=device_pb2.SubscribeRequest(prefix=prefix)))

    def unsubscribe(self, prefix: str) -> None:
        """Stops receiving the events of a prefix subscribed to before."""
        self._send(device_pb2.DeviceMessage(unsubscribe=device_pb2.UnsubscribeRequest(prefix=prefix)))

    def ping(self, nonce: int = 0) -> None:
        """Asks the server for a `Pong` carrying `nonce`; it arrives through `next_message`."""
        self._send(device_pb2.DeviceMessage(ping=device_pb2.Ping(nonce=nonce)))

    def send_publish(self, name: str, data: str = "", *, ttl: int = 0) -> int:
        """Sends a publish without waiting for its answer and returns its `seq` (1 for the session's first
        publish, then increasing), which the `PublishAck` or `DeviceError` answering it will carry."""
        with self._seq_lock:
            seq = next(self._seqs)
            request = device_pb2.PublishRequest(seq=seq, name=name, data=data, ttl=ttl)
            self._send(device_pb2.DeviceMessage(publish=request))
        return seq

    def publish(
        self, name: str, data: str = "", *, ttl: int = 0, timeout: float | None = None
    ) -> device_pb2.PublishAck:
        """Publishes an event and waits until it is durable; returns the `PublishAck` with this publish's seq.

        A refusal (a `DeviceError` with this publish's seq) raises `HookwireError` with the code and message the
        server gave, and the session stays usable. Raises `HookwireTimeoutError` when no answer came within
        `timeout` seconds, and `HookwireError` when the session ended first.
        """
        seq = self.send_publish(name, data, ttl=ttl)
        deadline = deadline_after(timeout)
        while True:
            message = self._receive(time_left(deadline))
            if message is None:
                raise HookwireError(None, f"the session ended before publish {seq} was answered")
            kind = message.WhichOneof("kind")
            if kind == "ack" and message.ack.seq == seq:
                return message.ack
            if kind == "error" and message.error.seq == seq:
                raise HookwireError.from_device_error(message.error.code, message.error.message)
            self._buffered.append(message)

    # Receiving.

    def next_message(self, timeout: float | None = None) -> device_pb2.KernelMessage | None:
        """Returns the next message from the server as it came (`hookwire.v1.device_pb2.KernelMessage`), kept
        ones first; `None` once the session has ended. Raises `HookwireTimeoutError` after `timeout` seconds."""
        if self._buffered:
            return self._buffered.popleft()
        return self._receive(timeout)

    def next_event(self, timeout: float | None = None) -> common_pb2.Event | None:
        """Returns the next event subscribed to, kept ones first; `None` once the session has ended.

        Acks, pongs and overflow reports are skipped (see `num_dropped`). A `DeviceError` (a refused
        subscription, or the refusal of a publish sent with `send_publish`) is raised as `HookwireError`; the
        session stays usable. Raises `HookwireTimeoutError` when no event came within `timeout` seconds.
        """
        deadline = deadline_after(timeout)
        while True:
            message = self.next_message(time_left(deadline))
            if message is None:
                return None
            kind = message.WhichOneof("kind")
            if kind == "event":
                return message.event
            if kind == "error":
                raise HookwireError.from_device_error(message.error.code, message.error.message)

    @property
    def num_dropped(self) -> int:
        """How many events the server dropped because this session did not read fast enough: the sum of the
        `Overflow` reports received so far."""
        return self._num_dropped

    # Ending.

    def close(self) -> None:
        """Ends the session. Publishes sent without waiting for their ack may or may not have been taken."""
        self._closed = True
        self._end_requests()
        self._inbox.stop()

    # Inner workings.

    def _requests(self) -> Iterator[device_pb2.DeviceMessage]:
        """The request stream gRPC reads from, on a thread of its own, until `_END_OF_REQUESTS`."""
        while True:
            message = self._outgoing.get()
            if message is _END_OF_REQUESTS:
                return
            yield message

    def _send(self, message: device_pb2.DeviceMessage) -> None:
        while True:
            if self._closed or self._inbox.has_ended:
                raise HookwireError(None, "the session has ended")
            try:
                # Waits in short steps while the queue is full, so that a session ending meanwhile is noticed.
                self._outgoing.put(message, timeout=0.1)
                return
            except queue.Full:
                continue

    def _end_requests(self) -> None:
        try:
            self._outgoing.put_nowait(_END_OF_REQUESTS)
        except queue.Full:
            # gRPC is not waiting on an empty queue then; cancelling the call stops it reading.
            pass

    def _receive(self, timeout: float | None) -> device_pb2.KernelMessage | None:
        """Reads one message off the stream, counting the events an `Overflow` reports as dropped."""
        message = self._inbox.get(timeout)
        if message is not None and message.WhichOneof("kind") == "overflow":
            self._num_dropped += message.overflow.num_dropped
        return message


_END_OF_REQUESTS = object()
