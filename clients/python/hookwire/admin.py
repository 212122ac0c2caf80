"""`AdminClient`: groups, devices, webhooks, deliveries and group tokens with an admin token, and a group's live
events (`EventStream`).

Every method is one gRPC call, or a wait on a stream, and raises `HookwireError` with the server's code and
message when it fails. Messages are the generated types of `hookwire.v1` (`common_pb2.Event`,
`admin_pb2.Group`, ...), documented in `proto/hookwire/v1/*.proto`; webhooks come back as `Webhook`, whose
definition is already parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Callable

import grpc

from hookwire._connection import Closing, Response, bearer_metadata, open_channel, unary
from hookwire._models import Definition, Item, Page, Webhook
from hookwire._streams import EventIterator, Inbox, open_stream
from hookwire.errors import HookwireError
from hookwire.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    common_pb2,
    deliveries_pb2,
    deliveries_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)

# The largest page the server gives; the `list_*` methods fetch pages of this size one after the other.
MAX_PAGE = 200


class AdminClient(Closing):
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
        return EventStream(open_stream(call, self._timeout))

    # The connection.

    def close(self) -> None:
        """Closes the connection; calls and streams still running fail with `CANCELLED`."""
        self._channel.close()

    def _call(self, method: Callable[..., Response], request: Any) -> Response:
        return unary(method, request, self._metadata, self._timeout)


class EventStream(EventIterator):
    """The live events of a group, from `AdminClient.subscribe`: `hookwire.v1.common_pb2.Event` messages.

    Iterating yields events until the server ends the stream; `next_event(timeout)` waits for one at most
    `timeout` seconds. Events are read off the connection in the background, up to a bound; past it the server
    queues and then drops events for this subscriber. Closing (or leaving the `with` block) ends the
    subscription.
    """

    def __init__(self, inbox: Inbox) -> None:
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


def _definition_json(definition: Definition) -> str:
    if isinstance(definition, str):
        return definition
    return json.dumps(definition)
