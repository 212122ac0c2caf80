"""The clients: `AdminClient` (groups, devices, webhooks, group tokens, a group's live events) and `DeviceClient`
(publishes, and the long-lived `DeviceSession` with its subscriptions).

Every method is one gRPC call, or a wait on a stream, and raises `HookwireError` with the server's code and
message when it fails. Messages are the generated types of `hookwire.v1` (`common_pb2.Event`,
`admin_pb2.Group`, ...), documented in `proto/hookwire/v1/*.proto`; webhooks come back as `Webhook`, whose
definition is already parsed.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Callable, Generic, TypeVar, Union

import grpc

from hookwire._connection import Metadata, bearer_metadata, open_channel
from hookwire.errors import HookwireError, HookwireTimeoutError
from hookwire.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    deliveries_pb2,
    deliveries_pb2_grpc,
    device_pb2,
    device_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)

Request = TypeVar("Request")
Response = TypeVar("Response")

#: A webhook definition: Particle webhook JSON, as a mapping or as JSON text (sent unchanged).
Definition = Union[Mapping[str, Any], str]

# The largest page the server gives; the `list_*` methods fetch pages of this size one after the other.
MAX_PAGE = 200

Item = TypeVar("Item")
_Self = TypeVar("_Self", bound="_Closing")


class _Closing:
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


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a list: its `items` and the `total` that match across every page."""

    items: list[Item]
    total: int


# How many messages a stream keeps unread before it stops reading from the server; the server then queues them
# and, past its own limit, drops events and reports how many with an `Overflow`.
INCOMING_QUEUE_CAPACITY = 1024
# How many messages a session queues for sending before its send methods wait.
OUTGOING_QUEUE_CAPACITY = 64


@dataclass(frozen=True)
class Webhook:
    """A stored webhook.

    `definition` is its Particle webhook JSON parsed into a dict; `definition_json` the same text exactly as
    stored (creating a webhook from it gives the same definition). `signing_secret` (`whsec_...`) is set only in
    the answer that created it, turned signing on, or rotated it; it is left out of `repr` so it does not end up
    in logs.

    Fields the server's `Webhook` message has beyond these (a newer kernel's) are kept in `extra` and read as
    attributes: `webhook.some_new_field`.
    """

    id: str
    group_id: str
    definition: dict[str, Any]
    created_at: str
    updated_at: str
    definition_json: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_proto(cls, message: admin_pb2.Webhook) -> Webhook:
        """Reads a `hookwire.v1.Webhook` message; any field not named above goes into `extra`."""
        known_fields = {"id", "group_id", "definition_json", "created_at", "updated_at", "signing_secret"}
        extra = {
            descriptor.name: _plain(getattr(message, descriptor.name))
            for descriptor in message.DESCRIPTOR.fields
            if descriptor.name not in known_fields
        }
        return cls(
            id=message.id,
            group_id=message.group_id,
            definition=json.loads(message.definition_json) if message.definition_json else {},
            created_at=message.created_at,
            updated_at=message.updated_at,
            definition_json=message.definition_json,
            # Read by name, so that this keeps working with protos from before the field existed.
            signing_secret=getattr(message, "signing_secret", ""),
            extra=extra,
        )

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not fields: those of `extra`. Read through `__dict__` so that a
        # half-built instance (copy, pickle) does not recurse.
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


class AdminClient(_Closing):
    """A client of the admin services, authenticated with an admin token (the server's root token, for one).

    `endpoint` is `host:port`, `http://host:port` or `https://host:port`; every call carries
    `authorization: Bearer <token>`. `timeout` (seconds) bounds each unary call; a call that takes longer raises
    `HookwireTimeoutError`. The connection is opened on the first call, so a server that cannot be reached
    raises `HookwireError` with code `UNAVAILABLE` there. A bad endpoint or token raises `ValueError` at once.

    One client may be shared by threads. Close it (or use it as a context manager) to release the connection.
    """

    def __init__(self, endpoint: str, token: str, *, timeout: float | None = None) -> None:
        self._metadata = bearer_metadata(token)
        self._timeout = timeout
        self._channel = open_channel(endpoint)
        self._groups = admin_pb2_grpc.GroupServiceStub(self._channel)
        self._devices = admin_pb2_grpc.DeviceAdminServiceStub(self._channel)
        self._webhooks = admin_pb2_grpc.WebhookServiceStub(self._channel)
        self._events = admin_pb2_grpc.EventServiceStub(self._channel)
        self._deliveries = deliveries_pb2_grpc.DeliveryServiceStub(self._channel)
        self._tokens = tokens_pb2_grpc.TokenServiceStub(self._channel)

    # Groups.

    def create_group(self, name: str) -> admin_pb2.Group:
        """Creates a group named `name` (1 to 200 characters)."""
        return self._call(self._groups.CreateGroup, admin_pb2.CreateGroupRequest(name=name))

    def get_group(self, id: str) -> admin_pb2.Group:
        """Gets the group `id` (`grp_...`)."""
        return self._call(self._groups.GetGroup, admin_pb2.GetGroupRequest(id=id))

    def list_groups(self, *, order_by: str = "created", descending: bool = False) -> list[admin_pb2.Group]:
        """Lists every group, oldest first (or by `order_by` "name"), fetching the pages one after the other."""
        return _every_page(lambda offset, limit: self.list_groups_page(offset, limit, order_by, descending))

    def list_groups_page(
        self, offset: int = 0, limit: int = 50, order_by: str = "created", descending: bool = False
    ) -> Page[admin_pb2.Group]:
        """Lists one page of groups: `limit` (1 to 200) from `offset`, ordered by `order_by` ("created" or
        "name", ties by id), last first with `descending`; `total` counts every group."""
        request = admin_pb2.ListGroupsRequest(
            offset=offset, limit=limit, order_by=_list_order(order_by), descending=descending
        )
        response = self._call(self._groups.ListGroups, request)
        return Page(list(response.groups), response.total)

    def rename_group(self, id: str, name: str) -> admin_pb2.Group:
        """Renames the group `id` (the new name has 1 to 200 characters)."""
        return self._call(self._groups.RenameGroup, admin_pb2.RenameGroupRequest(id=id, name=name))

    def delete_group(self, id: str) -> None:
        """Deletes the group `id` with its devices and webhooks."""
        self._call(self._groups.DeleteGroup, admin_pb2.DeleteGroupRequest(id=id))

    # Devices.

    def create_device(
        self,
        group_id: str,
        name: str = "",
        *,
        product_id: str = "",
        firmware_version: str = "",
        owner: str = "",
    ) -> admin_pb2.CreateDeviceResponse:
        """Creates a device in the group `group_id` and returns it with its token (`.device`, `.token`).

        The server shows the token only this once: store it on the device. `product_id`, `firmware_version` and
        `owner` are the `PRODUCT_ID`, `PRODUCT_VERSION` and `PRODUCT_USER_ID` template variables.
        """
        request = admin_pb2.CreateDeviceRequest(
            group_id=group_id, name=name, product_id=product_id, firmware_version=firmware_version, owner=owner
        )
        return self._call(self._devices.CreateDevice, request)

    def get_device(self, id: str) -> admin_pb2.Device:
        """Gets the device `id` (`dev_...`)."""
        return self._call(self._devices.GetDevice, admin_pb2.GetDeviceRequest(id=id))

    def list_devices(
        self, group_id: str, *, name_contains: str = "", order_by: str = "created", descending: bool = False
    ) -> list[admin_pb2.Device]:
        """Lists every device of the group `group_id` (whose name contains `name_contains`, ignoring case), oldest
        first or by `order_by` "name", fetching the pages one after the other."""
        return _every_page(
            lambda offset, limit: self.list_devices_page(
                group_id, offset, limit, name_contains=name_contains, order_by=order_by, descending=descending
            )
        )

    def list_devices_page(
        self,
        group_id: str,
        offset: int = 0,
        limit: int = 50,
        *,
        name_contains: str = "",
        order_by: str = "created",
        descending: bool = False,
    ) -> Page[admin_pb2.Device]:
        """Lists one page of the devices of the group `group_id`; `total` counts every device that matches."""
        request = admin_pb2.ListDevicesRequest(
            group_id=group_id,
            offset=offset,
            limit=limit,
            order_by=_list_order(order_by),
            descending=descending,
            name_contains=name_contains,
        )
        response = self._call(self._devices.ListDevices, request)
        return Page(list(response.devices), response.total)

    def update_device(
        self,
        id: str,
        *,
        name: str | None = None,
        product_id: str | None = None,
        firmware_version: str | None = None,
        owner: str | None = None,
    ) -> admin_pb2.Device:
        """Changes the device `id`: each field given replaces the stored one ("" clears it), the others stay.

        `product_id`, `firmware_version` and `owner` are the `PRODUCT_*` template variables; connections opened
        afterwards see the new values.
        """
        request = admin_pb2.UpdateDeviceRequest(id=id)
        for field_name, value in (
            ("name", name),
            ("product_id", product_id),
            ("firmware_version", firmware_version),
            ("owner", owner),
        ):
            if value is not None:
                setattr(request, field_name, value)
        return self._call(self._devices.UpdateDevice, request)

    def rotate_device_token(self, id: str) -> admin_pb2.CreateDeviceResponse:
        """Gives the device `id` a new token (`.token`, shown only this once); the old one is refused at once and
        the device's open sessions are closed."""
        return self._call(self._devices.RotateDeviceToken, admin_pb2.RotateDeviceTokenRequest(id=id))

    def delete_device(self, id: str) -> None:
        """Deletes the device `id`; its open sessions are closed and the webhooks limited to it are deleted."""
        self._call(self._devices.DeleteDevice, admin_pb2.DeleteDeviceRequest(id=id))

    # Webhooks.

    def create_webhook(self, group_id: str, definition: Definition) -> Webhook:
        """Creates a webhook in the group `group_id` from its Particle webhook JSON definition.

        `definition` is a mapping (sent as JSON) or JSON text (sent as it is). Unknown fields are refused with
        `INVALID_ARGUMENT` naming them.
        """
        request = admin_pb2.CreateWebhookRequest(group_id=group_id, definition_json=_definition_json(definition))
        return Webhook.from_proto(self._call(self._webhooks.CreateWebhook, request))

    def get_webhook(self, id: str) -> Webhook:
        """Gets the webhook `id` (`whk_...`)."""
        return Webhook.from_proto(self._call(self._webhooks.GetWebhook, admin_pb2.GetWebhookRequest(id=id)))

    def list_webhooks(
        self,
        group_id: str,
        device_id: str | None = None,
        *,
        name_contains: str = "",
        url_contains: str = "",
        metadata: Mapping[str, str] | None = None,
        order_by: str = "created",
        descending: bool = False,
    ) -> list[Webhook]:
        """Lists every webhook of the group `group_id` that the filters keep, oldest first (or by `order_by`
        "name"), fetching the pages one after the other. The filters are those of `list_webhooks_page`."""
        return _every_page(
            lambda offset, limit: self.list_webhooks_page(
                group_id,
                offset,
                limit,
                device_id=device_id,
                name_contains=name_contains,
                url_contains=url_contains,
                metadata=metadata,
                order_by=order_by,
                descending=descending,
            )
        )

    def list_webhooks_page(
        self,
        group_id: str,
        offset: int = 0,
        limit: int = 50,
        *,
        device_id: str | None = None,
        name_contains: str = "",
        url_contains: str = "",
        metadata: Mapping[str, str] | None = None,
        order_by: str = "created",
        descending: bool = False,
    ) -> Page[Webhook]:
        """Lists one page of the webhooks of the group `group_id`: `limit` (1 to 200) from `offset`.

        Filters, all of which must match: `device_id` (webhooks limited to that device by `deviceID` or
        `x-devices`), `name_contains` (in the `name`, ignoring case), `url_contains` (in the `url`, as written),
        `metadata` (each key with this value in `x-metadata`; a number or boolean as JSON: `{"floor": "1"}`).
        `total` counts every webhook that matches.
        """
        request = admin_pb2.ListWebhooksRequest(
            group_id=group_id,
            device_id=device_id or "",
            offset=offset,
            limit=limit,
            order_by=_list_order(order_by),
            descending=descending,
            name_contains=name_contains,
            url_contains=url_contains,
            metadata=dict(metadata or {}),
        )
        response = self._call(self._webhooks.ListWebhooks, request)
        return Page([Webhook.from_proto(webhook) for webhook in response.webhooks], response.total)

    def batch_create_webhooks(self, group_id: str, definitions: list[Definition]) -> list[Webhook]:
        """Creates webhooks in the group `group_id`, all or none: when one definition is refused, none is stored
        and `INVALID_ARGUMENT` names it by index (`webhooks[3].url: ...`). At most 200 at once."""
        request = admin_pb2.BatchCreateWebhooksRequest(
            group_id=group_id, webhooks=[_definition_json(definition) for definition in definitions]
        )
        response = self._call(self._webhooks.BatchCreateWebhooks, request)
        return [Webhook.from_proto(webhook) for webhook in response.webhooks]

    def import_webhooks(self, group_id: str, particle_json: str | Definition | list[Definition]) -> list[Webhook]:
        """Creates webhooks from Particle webhook JSON holding one definition or an array of them (text, a
        mapping, or a list), all or none, as `batch_create_webhooks`."""
        parsed = json.loads(particle_json) if isinstance(particle_json, str) else particle_json
        if isinstance(parsed, Mapping):
            return self.batch_create_webhooks(group_id, [parsed])
        if isinstance(parsed, list):
            return self.batch_create_webhooks(group_id, parsed)
        raise ValueError("particle_json: expected a webhook definition (an object) or an array of them")

    def export_webhooks(self, group_id: str, device_id: str | None = None) -> list[dict[str, Any]]:
        """The definitions of every webhook of the group (or limited to `device_id`), oldest first: a Particle
        JSON array that `import_webhooks` takes (`json.dumps` it to write a file)."""
        return [webhook.definition for webhook in self.list_webhooks(group_id, device_id)]

    def batch_delete_webhooks(self, ids: list[str]) -> None:
        """Deletes webhooks, all or none: when one does not exist, none is deleted and `NOT_FOUND` names it
        (`ids[2]: webhook ... not found`). At most 200 at once."""
        self._call(self._webhooks.BatchDeleteWebhooks, admin_pb2.BatchDeleteWebhooksRequest(ids=list(ids)))

    def test_webhook(self, id: str, data: str | None = None) -> admin_pb2.TestWebhookResponse:
        """Tests the webhook `id` as Particle's Test button does: an event named after its event prefix, published
        as device `api` with `data` ("test-event" by default), delivered to this webhook only.

        Returns `.succeeded`, `.event_id` and `.attempt` (response status, error class and message, response
        headers and body, duration), once the first attempt is made; `DEADLINE_EXCEEDED` when it is not in time.
        """
        request = admin_pb2.TestWebhookRequest(id=id)
        if data is not None:
            request.data = data
        return self._call(self._webhooks.TestWebhook, request)

    def enable_webhook(self, id: str) -> Webhook:
        """Enables the webhook `id` after it was disabled at run time (its failure limit, a `410 Gone` with
        `x-retry`, or `disable_webhook`) and resets its count of consecutive failures."""
        return Webhook.from_proto(self._call(self._webhooks.EnableWebhook, admin_pb2.EnableWebhookRequest(id=id)))

    def disable_webhook(self, id: str) -> Webhook:
        """Disables the webhook `id` at run time, its definition unchanged (`disabled_reason` "disabled by an
        admin"), until `enable_webhook`."""
        return Webhook.from_proto(self._call(self._webhooks.DisableWebhook, admin_pb2.DisableWebhookRequest(id=id)))

    def update_webhook(self, id: str, definition: Definition) -> Webhook:
        """Replaces the definition of the webhook `id` (a mapping or JSON text); the id stays."""
        request = admin_pb2.UpdateWebhookRequest(id=id, definition_json=_definition_json(definition))
        return Webhook.from_proto(self._call(self._webhooks.UpdateWebhook, request))

    def delete_webhook(self, id: str) -> None:
        """Deletes the webhook `id`. Deliveries already made stay in the attempt log."""
        self._call(self._webhooks.DeleteWebhook, admin_pb2.DeleteWebhookRequest(id=id))

    def rotate_webhook_secret(self, id: str, grace_seconds: int | None = None) -> Webhook:
        """Gives the signing webhook `id` a new secret, returned in `signing_secret`.

        The old secret keeps signing for `grace_seconds` (the server's default, one day, when `None`; 0 retires
        it at once). `INVALID_ARGUMENT` naming `id` when the webhook does not sign.
        """
        # Looked up by name: a package built from protos older than the call still imports, and says so here.
        request_type = getattr(admin_pb2, "RotateWebhookSecretRequest", None)
        rotate = getattr(self._webhooks, "RotateWebhookSecret", None)
        if request_type is None or rotate is None:
            raise HookwireError(
                grpc.StatusCode.UNIMPLEMENTED, "this package was built from protos without RotateWebhookSecret"
            )
        request = request_type(id=id)
        if grace_seconds is not None:
            request.grace_seconds = grace_seconds
        return Webhook.from_proto(self._call(rotate, request))

    # Deliveries.

    def recent_attempts(self, webhook_id: str, since: str = "") -> list[deliveries_pb2.Attempt]:
        """The webhook's last 10 successful and last 10 failed attempts, newest first, since `since` (ISO-8601
        UTC, or a duration back from now such as "2h"; empty: no bound)."""
        request = deliveries_pb2.ListAttemptsRequest(webhook_id=webhook_id, since=since)
        return list(self._call(self._deliveries.ListAttempts, request).attempts)

    def attempt_page(
        self, webhook_id: str, *, since: str = "", limit: int = 50, page_token: str = ""
    ) -> deliveries_pb2.ListAttemptsResponse:
        """One page of every attempt of the webhook, newest first (`limit` 1 to 200); pass the answer's
        `next_page_token` back for the next page (empty on the last)."""
        request = deliveries_pb2.ListAttemptsRequest(
            webhook_id=webhook_id, all=True, since=since, limit=limit, page_token=page_token
        )
        return self._call(self._deliveries.ListAttempts, request)

    def history(self, webhook_id: str, days: int = 0) -> list[deliveries_pb2.DayCounts]:
        """The webhook's delivery counts per UTC day for the last `days` days, today included (0: 31 days),
        oldest first."""
        request = deliveries_pb2.GetHistoryRequest(webhook_id=webhook_id, days=days)
        return list(self._call(self._deliveries.GetHistory, request).days)

    def replay(self, webhook_id: str, since: str, status: str = "failed") -> int:
        """Delivers again the webhook's deliveries created since `since` whose status is `status` ("failed",
        "skipped" or "all"); returns how many were queued."""
        request = deliveries_pb2.ReplayRequest(webhook_id=webhook_id, since=since, status=status)
        return self._call(self._deliveries.Replay, request).num_replayed

    def resend_attempt(self, attempt_id: int) -> int:
        """Delivers again the delivery of one attempt; returns how many were queued (1)."""
        request = deliveries_pb2.ResendAttemptRequest(attempt_id=attempt_id)
        return self._call(self._deliveries.ResendAttempt, request).num_replayed

    # Group tokens.

    def create_token(self, group_id: str, role: str, name: str = "") -> tokens_pb2.CreateTokenResponse:
        """Creates an admin token for the group `group_id` and returns it with its secret (`.admin_token`,
        `.token`, `hwa_...`).

        `role` is "viewer" (reads: gets, lists, the attempt log, history, the live event stream) or "editor" (also
        changes, replays and resends, and manages the group's tokens). `name` is a human name, up to 200
        characters. The server shows the token only this once. Needs the root token or an editor token of the
        group; a viewer token's changes fail with `PERMISSION_DENIED`.
        """
        request = tokens_pb2.CreateTokenRequest(group_id=group_id, role=_role(role), name=name)
        return self._call(self._tokens.CreateToken, request)

    def list_tokens(self, group_id: str) -> list[tokens_pb2.AdminToken]:
        """The tokens of the group `group_id`, oldest first, without their secrets (`.role` is
        `tokens_pb2.ROLE_VIEWER` or `ROLE_EDITOR`; `.last_used_at` empty when never used)."""
        request = tokens_pb2.ListTokensRequest(group_id=group_id)
        return list(self._call(self._tokens.ListTokens, request).tokens)

    def revoke_token(self, id: str) -> None:
        """Revokes the token `id` (`tok_...`): it is refused with `UNAUTHENTICATED` from the next call on."""
        self._call(self._tokens.RevokeToken, tokens_pb2.RevokeTokenRequest(id=id))

    # Events.

    def subscribe(self, group_id: str, prefix: str = "") -> EventStream:
        """Follows the live events of the group `group_id` whose name starts with `prefix` (empty: all).

        Returns once the server has set the subscription up: the stream holds the events that happen from then
        on (nothing is replayed). Iterate it, or call `next_event(timeout)`; close it when done.
        """
        request = admin_pb2.SubscribeEventsRequest(group_id=group_id, prefix=prefix)
        try:
            call = self._events.Subscribe(request, metadata=self._metadata)
        except grpc.RpcError as error:
            raise HookwireError.from_rpc_error(error) from None
        return EventStream(_open_stream(call, self._timeout))

    # The connection.

    def close(self) -> None:
        """Closes the connection; calls and streams still running fail with `CANCELLED`."""
        self._channel.close()

    def _call(self, method: Callable[..., Response], request: Any) -> Response:
        return _unary(method, request, self._metadata, self._timeout)


class EventStream(_Closing):
    """The live events of a group, from `AdminClient.subscribe`: `hookwire.v1.common_pb2.Event` messages.

    Iterating yields events until the server ends the stream; `next_event(timeout)` waits for one at most
    `timeout` seconds. Events are read off the connection in the background, up to a bound; past it the server
    queues and then drops events for this subscriber. Closing (or leaving the `with` block) ends the
    subscription.
    """

    def __init__(self, inbox: _Inbox) -> None:
        self._inbox = inbox

    def next_event(self, timeout: float | None = None) -> common_pb2.Event | None:
        """Waits for the next event; `None` once the stream has ended (the server shut down, or `close`).

        Raises `HookwireTimeoutError` when `timeout` seconds pass first (the stream stays usable), and
        `HookwireError` when the server ended the stream with an error.
        """
        return self._inbox.get(timeout)

    def close(self) -> None:
        """Ends the subscription."""
        self._inbox.stop()

    def __iter__(self) -> Iterator[common_pb2.Event]:
        return self

    def __next__(self) -> common_pb2.Event:
        event = self.next_event()
        if event is None:
            raise StopIteration
        return event


class DeviceClient(_Closing):
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
        return _unary(self._device_service.Publish, request, self._metadata, self._timeout)

    def session(self) -> DeviceSession:
        """Opens a `Connect` session and returns once the server has accepted it.

        An unknown token raises `HookwireError` with `UNAUTHENTICATED` here. Use the session as a context
        manager, or close it.
        """
        return DeviceSession(self._device_service, self._metadata, self._timeout)

    def close(self) -> None:
        """Closes the connection, and with it the sessions opened from this client."""
        self._channel.close()


class DeviceSession(_Closing):
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
            self._inbox = _open_stream(call, open_timeout, on_end=self._end_requests)
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
        deadline = _deadline(timeout)
        while True:
            message = self._receive(_remaining(deadline))
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
        deadline = _deadline(timeout)
        while True:
            message = self.next_message(_remaining(deadline))
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

    def __iter__(self) -> Iterator[common_pb2.Event]:
        return self

    def __next__(self) -> common_pb2.Event:
        event = self.next_event()
        if event is None:
            raise StopIteration
        return event

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


class _Inbox:
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
        deadline = _deadline(timeout)
        with self._condition:
            while not self._items and not self._ended and not self._stopping:
                remaining = _remaining(deadline)
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


def _open_stream(call: Any, timeout: float | None, on_end: Callable[[], None] | None = None) -> _Inbox:
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
    _raise_if_refused(call)
    return _Inbox(call, on_end)


def _raise_if_refused(call: Any) -> None:
    if not call.done():
        return
    code = call.code()
    if code != grpc.StatusCode.OK:
        details = call.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise HookwireTimeoutError(details or "the call did not finish in time")
        raise HookwireError(code, details)


def _unary(method: Callable[..., Response], request: Any, metadata: Metadata, timeout: float | None) -> Response:
    try:
        return method(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as error:
        # `from None`: the error already holds the server's code and message, and gRPC's own exception would
        # repeat them in a longer form.
        raise HookwireError.from_rpc_error(error) from None


def _role(role: str) -> int:
    roles = {"viewer": tokens_pb2.ROLE_VIEWER, "editor": tokens_pb2.ROLE_EDITOR}
    if role not in roles:
        raise ValueError(f"role: {role!r} is not one of 'viewer', 'editor'")
    return roles[role]


def _list_order(order_by: str) -> int:
    orders = {"created": admin_pb2.LIST_ORDER_CREATED, "name": admin_pb2.LIST_ORDER_NAME}
    if order_by not in orders:
        raise ValueError(f"order_by: {order_by!r} is not one of 'created', 'name'")
    return orders[order_by]


def _every_page(fetch: Callable[[int, int], Page[Item]]) -> list[Item]:
    """Fetches pages of `MAX_PAGE` until the last one."""
    items: list[Item] = []
    while True:
        page = fetch(len(items), MAX_PAGE)
        items.extend(page.items)
        if len(page.items) < MAX_PAGE or len(items) >= page.total:
            return items


def _plain(value: Any) -> Any:
    """A message field as plain Python: a map as a dict, a repeated field as a list, anything else as it is."""
    if hasattr(value, "items") and callable(value.items):
        return dict(value.items())
    if hasattr(value, "extend") and not isinstance(value, (str, bytes)):
        return list(value)
    return value


def _definition_json(definition: Definition) -> str:
    if isinstance(definition, str):
        return definition
    return json.dumps(definition)


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
