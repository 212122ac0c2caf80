"""The admin client against a real kernel: groups, devices and webhooks, their errors, and the live event stream."""

from __future__ import annotations

import json
import socket

import grpc
import pytest

import hookwire

from harness import ROOT_TOKEN, Kernel, Receiver, next_event_named

UNKNOWN_GROUP_ID = "grp_" + "0" * 32
UNKNOWN_DEVICE_ID = "dev_" + "0" * 32
UNKNOWN_WEBHOOK_ID = "whk_" + "0" * 32


def test_a_group_is_created_fetched_listed_and_deleted(admin: hookwire.AdminClient) -> None:
    group = admin.create_group("greenhouse")

    assert group.id.startswith("grp_")
    assert group.name == "greenhouse"
    assert group.created_at.endswith("Z")
    assert admin.get_group(group.id) == group
    assert group in admin.list_groups()

    admin.delete_group(group.id)

    assert group.id not in [listed.id for listed in admin.list_groups()]
    with pytest.raises(hookwire.HookwireError) as raised:
        admin.get_group(group.id)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_a_device_is_created_with_its_token_and_product_fields(admin: hookwire.AdminClient, group) -> None:
    created = admin.create_device(
        group.id, "thermostat", product_id="p-42", firmware_version="1.2.3", owner="alice@example.com"
    )

    assert created.token
    device = created.device
    assert device.id.startswith("dev_")
    assert (device.group_id, device.name) == (group.id, "thermostat")
    assert (device.product_id, device.firmware_version, device.owner) == ("p-42", "1.2.3", "alice@example.com")
    assert admin.get_device(device.id) == device


def test_devices_are_listed_per_group_oldest_first_and_deleted(admin: hookwire.AdminClient, group) -> None:
    other_group = admin.create_group("other")
    try:
        first = admin.create_device(group.id, "first").device
        second = admin.create_device(group.id).device
        admin.create_device(other_group.id, "elsewhere")

        assert [device.id for device in admin.list_devices(group.id)] == [first.id, second.id]
        assert second.name == ""

        admin.delete_device(first.id)

        assert [device.id for device in admin.list_devices(group.id)] == [second.id]
    finally:
        admin.delete_group(other_group.id)


def test_a_webhook_is_created_from_a_dict_or_json_text_and_read_back_as_a_dict(
    admin: hookwire.AdminClient, group
) -> None:
    definition = {"event": "temp", "url": "http://127.0.0.1:9/t", "json": {"celsius": "{{{PARTICLE_EVENT_VALUE}}}"}}

    from_dict = admin.create_webhook(group.id, definition)
    from_text = admin.create_webhook(group.id, json.dumps({"event": "humidity", "url": "http://127.0.0.1:9/h"}))

    assert from_dict.id.startswith("whk_")
    assert from_dict.group_id == group.id
    assert from_dict.definition["event"] == "temp"
    assert from_dict.definition["json"] == {"celsius": "{{{PARTICLE_EVENT_VALUE}}}"}
    assert json.loads(from_dict.definition_json) == from_dict.definition
    assert from_dict.created_at and from_dict.updated_at
    assert from_text.definition["event"] == "humidity"
    fetched = admin.get_webhook(from_dict.id)
    assert (fetched.id, fetched.definition) == (from_dict.id, from_dict.definition)


def test_webhooks_are_listed_per_group_and_filtered_by_device(admin: hookwire.AdminClient, group) -> None:
    device_id = admin.create_device(group.id, "limited").device.id
    for_everyone = admin.create_webhook(group.id, {"event": "a", "url": "http://127.0.0.1:9/a"})
    for_the_device = admin.create_webhook(
        group.id, {"event": "b", "url": "http://127.0.0.1:9/b", "deviceID": device_id}
    )

    assert [webhook.id for webhook in admin.list_webhooks(group.id)] == [for_everyone.id, for_the_device.id]
    assert [webhook.id for webhook in admin.list_webhooks(group.id, device_id=device_id)] == [for_the_device.id]


def test_updating_a_webhook_replaces_its_definition_and_keeps_its_id(admin: hookwire.AdminClient, group) -> None:
    webhook = admin.create_webhook(group.id, {"event": "temp", "url": "http://127.0.0.1:9/old"})

    updated = admin.update_webhook(webhook.id, {"event": "temp", "url": "http://127.0.0.1:9/new", "disabled": True})

    assert updated.id == webhook.id
    assert updated.definition["url"] == "http://127.0.0.1:9/new"
    assert updated.definition["disabled"] is True
    assert admin.get_webhook(webhook.id).definition == updated.definition


def test_a_deleted_webhook_is_not_found(admin: hookwire.AdminClient, group) -> None:
    webhook = admin.create_webhook(group.id, {"event": "temp", "url": "http://127.0.0.1:9/t"})

    admin.delete_webhook(webhook.id)

    with pytest.raises(hookwire.HookwireError) as raised:
        admin.get_webhook(webhook.id)
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert admin.list_webhooks(group.id) == []


@pytest.mark.skipif(
    not hasattr(hookwire.v1.admin_pb2, "RotateWebhookSecretRequest"),
    reason="built from protos (and so a kernel) without webhook signing",
)
def test_a_signing_webhook_shows_its_secret_once_and_rotating_gives_a_new_one(
    admin: hookwire.AdminClient, group
) -> None:
    webhook = admin.create_webhook(group.id, {"event": "temp", "url": "http://127.0.0.1:9/t", "x-signing": True})

    assert webhook.signing_secret.startswith("whsec_")
    assert webhook.signing_secret not in repr(webhook)
    assert admin.get_webhook(webhook.id).signing_secret == ""
    rotated = admin.rotate_webhook_secret(webhook.id, grace_seconds=0)
    assert rotated.signing_secret.startswith("whsec_")
    assert rotated.signing_secret != webhook.signing_secret


def test_an_unknown_field_in_a_definition_is_invalid_argument_naming_it(admin: hookwire.AdminClient, group) -> None:
    with pytest.raises(hookwire.HookwireError) as raised:
        admin.create_webhook(group.id, {"event": "temp", "url": "http://127.0.0.1:9/t", "colour": "red"})

    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message.startswith("colour: ")
    assert str(raised.value).endswith("(INVALID_ARGUMENT)")


def test_a_malformed_id_is_invalid_argument_naming_the_field(admin: hookwire.AdminClient) -> None:
    with pytest.raises(hookwire.HookwireError) as raised:
        admin.list_devices("not-a-group")

    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message.startswith("group_id: ")


@pytest.mark.parametrize(
    "call",
    [
        lambda admin: admin.get_group(UNKNOWN_GROUP_ID),
        lambda admin: admin.get_device(UNKNOWN_DEVICE_ID),
        lambda admin: admin.get_webhook(UNKNOWN_WEBHOOK_ID),
        lambda admin: admin.delete_webhook(UNKNOWN_WEBHOOK_ID),
        lambda admin: admin.create_device(UNKNOWN_GROUP_ID, "orphan"),
    ],
    ids=["get_group", "get_device", "get_webhook", "delete_webhook", "create_device"],
)
def test_an_unknown_id_is_not_found(admin: hookwire.AdminClient, call) -> None:
    with pytest.raises(hookwire.HookwireError) as raised:
        call(admin)

    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_a_bad_admin_token_is_unauthenticated(kernel: Kernel) -> None:
    with hookwire.AdminClient(kernel.endpoint, "not-" + ROOT_TOKEN) as admin:
        with pytest.raises(hookwire.HookwireError) as raised:
            admin.list_groups()

    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_server_that_cannot_be_reached_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with hookwire.AdminClient(f"127.0.0.1:{closed_port}", ROOT_TOKEN, timeout=5) as admin:
        with pytest.raises(hookwire.HookwireError) as raised:
            admin.list_groups()

    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


def test_subscribe_streams_the_groups_events_and_their_hook_events(
    admin: hookwire.AdminClient, kernel: Kernel, group, receiver: Receiver
) -> None:
    token = admin.create_device(group.id, "sensor").token
    admin.create_webhook(group.id, {"event": "temp", "url": f"{receiver.base_url}/readings"})

    with admin.subscribe(group.id) as events, hookwire.DeviceClient(kernel.endpoint, token) as device:
        ack = device.publish("temperature", "21.5")

        published = next_event_named(events, "temperature")
        assert (published.id, published.data, published.group_id) == (ack.event_id, "21.5", group.id)
        assert published.device_id.startswith("dev_")
        hook_sent = next_event_named(events, "hook-sent/temperature")
        assert hook_sent.group_id == group.id


def test_subscribe_with_a_prefix_streams_only_the_matching_events(
    admin: hookwire.AdminClient, kernel: Kernel, group
) -> None:
    token = admin.create_device(group.id, "sensor").token

    with admin.subscribe(group.id, prefix="temp") as events, hookwire.DeviceClient(kernel.endpoint, token) as device:
        device.publish("humidity", "40")
        device.publish("temperature", "21.5")

        event = events.next_event(timeout=10)
        assert event is not None and event.name == "temperature"
        with pytest.raises(hookwire.HookwireTimeoutError):
            events.next_event(timeout=0.3)


def test_a_subscription_to_an_unknown_group_is_refused_when_it_opens(admin: hookwire.AdminClient) -> None:
    with pytest.raises(hookwire.HookwireError) as raised:
        admin.subscribe(UNKNOWN_GROUP_ID)

    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_a_closed_event_stream_ends_its_iteration(admin: hookwire.AdminClient, group) -> None:
    events = admin.subscribe(group.id)

    events.close()

    assert list(events) == []
