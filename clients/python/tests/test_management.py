"""Managing webhooks and devices from Python against a real kernel: paging and filters, import and export of
Particle JSON (all or nothing), batch delete, the test delivery, enable/disable, device updates and token rotation,
and the delivery calls."""

from __future__ import annotations

import json
import time

import grpc
import pytest

import hookwire

from harness import Kernel, Receiver

UNKNOWN_WEBHOOK_ID = "whk_" + "0" * 32


def test_webhooks_are_paged_ordered_and_filtered(admin: hookwire.AdminClient, group) -> None:
    specs = [
        ("Kitchen temperature", "https://a.example.com/t", {"room": "kitchen", "floor": 1}),
        ("garage door", "https://b.example.com/door", {"room": "garage"}),
        ("salon TEMPERATURE", "https://a.example.com/s", {"room": "salon", "floor": 1}),
    ]
    for name, url, metadata in specs:
        admin.create_webhook(group.id, {"event": "e", "url": url, "name": name, "x-metadata": metadata})

    page = admin.list_webhooks_page(group.id, 0, 2)
    assert [webhook.name for webhook in page.items] == ["Kitchen temperature", "garage door"]
    assert page.total == 3
    by_name = admin.list_webhooks_page(group.id, order_by="name", descending=True)
    assert [webhook.name for webhook in by_name.items] == ["salon TEMPERATURE", "Kitchen temperature", "garage door"]
    temperature = admin.list_webhooks(group.id, name_contains="temperature", metadata={"floor": "1"})
    assert [webhook.name for webhook in temperature] == ["Kitchen temperature", "salon TEMPERATURE"]
    assert temperature[1].metadata == {"room": "salon", "floor": "1"}
    assert [webhook.url for webhook in admin.list_webhooks(group.id, url_contains="b.example")] == [
        "https://b.example.com/door"
    ]

    with pytest.raises(hookwire.HookwireError) as raised:
        admin.list_webhooks_page(group.id, limit=201)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message.startswith("limit: ")
    with pytest.raises(ValueError):
        admin.list_webhooks_page(group.id, order_by="url")


def test_particle_json_imports_all_or_nothing_and_exports_as_an_array(admin: hookwire.AdminClient, group) -> None:
    broken = json.dumps([{"event": "a", "url": "https://example.com/a"}, {"event": "b", "url": "{{{x"}])
    with pytest.raises(hookwire.HookwireError) as raised:
        admin.import_webhooks(group.id, broken)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.message.startswith("webhooks[1].url: ")
    assert admin.list_webhooks(group.id) == []

    hooks = [
        {"event": "a", "url": "https://example.com/a", "name": "alpha"},
        {"event": "b", "url": "https://example.com/b", "name": "beta"},
    ]
    created = admin.import_webhooks(group.id, json.dumps(hooks))
    assert [webhook.name for webhook in created] == ["alpha", "beta"]
    admin.import_webhooks(group.id, {"event": "c", "url": "https://example.com/c"})
    exported = admin.export_webhooks(group.id)
    assert exported[:2] == hooks
    assert len(exported) == 3

    ids = [webhook.id for webhook in created]
    with pytest.raises(hookwire.HookwireError) as raised:
        admin.batch_delete_webhooks([ids[0], UNKNOWN_WEBHOOK_ID])
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert raised.value.message == f"ids[1]: webhook {UNKNOWN_WEBHOOK_ID} not found"
    assert len(admin.list_webhooks(group.id)) == 3
    admin.batch_delete_webhooks(ids)
    assert [webhook.definition["event"] for webhook in admin.list_webhooks(group.id)] == ["c"]


def test_a_webhook_test_reports_what_the_destination_answered(
    admin: hookwire.AdminClient, group, receiver: Receiver
) -> None:
    webhook = admin.create_webhook(group.id, {"event": "temp", "url": f"{receiver.base_url}/t"})

    receiver.status, receiver.body = 200, b"fine"
    tested = admin.test_webhook(webhook.id)
    assert tested.succeeded
    assert (tested.attempt.response_status, tested.attempt.response_body) == (200, b"fine")
    request = receiver.wait_for(1)[0]
    assert b"data=test-event" in request.body and b"coreid=api" in request.body

    receiver.status, receiver.body = 500, b"down"
    tested = admin.test_webhook(webhook.id, data="21.5")
    assert not tested.succeeded
    assert (tested.attempt.response_status, tested.attempt.error_class) == (500, "http_5xx")
    assert b"data=21.5" in receiver.wait_for(2)[1].body


def test_a_webhook_is_disabled_and_enabled(admin: hookwire.AdminClient, group) -> None:
    webhook = admin.create_webhook(group.id, {"event": "temp", "url": "https://example.com/t"})

    disabled = admin.disable_webhook(webhook.id)
    assert (disabled.auto_disabled, disabled.disabled_reason) == (True, "disabled by an admin")
    enabled = admin.enable_webhook(webhook.id)
    assert (enabled.auto_disabled, enabled.disabled_reason, enabled.consecutive_failures) == (False, "", 0)


def test_devices_are_paged_updated_and_get_new_tokens(admin: hookwire.AdminClient, kernel: Kernel, group) -> None:
    created = admin.create_device(group.id, "sensor-b")
    admin.create_device(group.id, "Sensor-A")
    admin.create_device(group.id, "pump")
    device = created.device

    page = admin.list_devices_page(group.id, name_contains="SENSOR", order_by="name", descending=True)
    assert page.total == 2
    assert page.items[0].name == "sensor-b"
    assert len(admin.list_devices(group.id)) == 3

    updated = admin.update_device(device.id, firmware_version="2.0", owner="bob")
    assert (updated.name, updated.firmware_version, updated.owner) == ("sensor-b", "2.0", "bob")
    assert admin.update_device(device.id, name="boiler", owner="").owner == ""
    assert admin.get_device(device.id).name == "boiler"

    rotated = admin.rotate_device_token(device.id)
    assert rotated.token.startswith("hwd_") and rotated.token != created.token
    with hookwire.DeviceClient(kernel.endpoint, created.token) as old, pytest.raises(hookwire.HookwireError) as raised:
        old.publish("temp", "1")
    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    with hookwire.DeviceClient(kernel.endpoint, rotated.token) as new:
        assert new.publish("temp", "1").event_id

    assert admin.rename_group(group.id, "renamed").name == "renamed"
    assert admin.list_groups_page(limit=1).total >= 1


def test_attempts_history_replay_and_resend(admin: hookwire.AdminClient, group, receiver: Receiver) -> None:
    webhook = admin.create_webhook(group.id, {"event": "job", "url": f"{receiver.base_url}/jobs"})
    receiver.status = 500
    attempt = admin.test_webhook(webhook.id).attempt

    attempts = admin.recent_attempts(webhook.id)
    assert [logged.id for logged in attempts] == [attempt.id]
    assert admin.attempt_page(webhook.id, limit=10).attempts[0].error_class == "http_5xx"
    today = admin.history(webhook.id, days=1)
    assert len(today) == 1
    # The delivery's status is written with its attempt; the history counts it once it is finished.
    deadline = time.monotonic() + 10
    while admin.history(webhook.id, days=1)[0].failed != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert admin.history(webhook.id, days=1)[0].failed == 1

    receiver.status = 200
    assert admin.resend_attempt(attempt.id) == 1
    receiver.wait_for(2)
    deadline = time.monotonic() + 10
    while admin.history(webhook.id, days=1)[0].succeeded != 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (admin.history(webhook.id, days=1)[0].succeeded, admin.history(webhook.id, days=1)[0].failed) == (1, 0)
    assert admin.replay(webhook.id, since="1h", status="failed") == 0
    assert admin.replay(webhook.id, since="1h", status="all") == 1
    assert len(receiver.wait_for(3)) == 3
