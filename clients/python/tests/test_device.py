"""The device client against a real kernel: unary publishes, and sessions that publish, subscribe and ping."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import grpc
import pytest

import hookwire

from harness import Kernel, Receiver, next_event_named


@pytest.fixture
def device(admin: hookwire.AdminClient, kernel: Kernel, group) -> Iterator[tuple[str, hookwire.DeviceClient]]:
    """A device of the test's group: its id and a client authenticated with its token."""
    created = admin.create_device(group.id, "sensor", product_id="p-7")
    with hookwire.DeviceClient(kernel.endpoint, created.token, timeout=10) as client:
        yield created.device.id, client


def test_the_unary_publish_returns_an_ack_once_the_event_is_durable(device, admin, group) -> None:
    _, client = device
    admin.create_webhook(group.id, {"event": "temp", "url": "http://127.0.0.1:9/t", "disabled": True})
    admin.create_webhook(group.id, {"event": "te", "url": "http://127.0.0.1:9/t", "disabled": True})

    ack = client.publish("temperature", "21.5")

    assert ack.event_id.startswith("evt_")
    # Disabled webhooks never fire.
    assert ack.num_deliveries == 0


def test_a_published_event_reaches_the_receiver_as_particles_default_form(
    device, admin: hookwire.AdminClient, group, receiver: Receiver
) -> None:
    device_id, client = device
    admin.create_webhook(group.id, {"event": "temp", "url": f"{receiver.base_url}/readings"})

    ack = client.publish("temperature", "21.5")

    assert ack.num_deliveries == 1
    [request] = receiver.wait_for(1)
    assert (request.method, request.path) == ("POST", "/readings")
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["user-agent"].startswith("hookwire/")
    form = {name: values[0] for name, values in parse_qs(request.body.decode(), keep_blank_values=True).items()}
    assert set(form) == {"event", "data", "published_at", "coreid"}
    assert (form["event"], form["data"], form["coreid"]) == ("temperature", "21.5", device_id)
    assert form["published_at"].endswith("Z")


def test_a_session_that_subscribes_receives_hook_sent(
    device, admin: hookwire.AdminClient, group, receiver: Receiver
) -> None:
    _, client = device
    admin.create_webhook(group.id, {"event": "temp", "url": f"{receiver.base_url}/readings"})

    with client.session() as session:
        session.subscribe("hook-sent/")
        ack = session.publish("temperature", "21.5")

        assert (ack.seq, ack.num_deliveries) == (1, 1)
        event = next_event_named(session, "hook-sent/temperature")
    assert event.group_id == group.id
    receiver.wait_for(1)


def test_a_session_receives_the_destinations_answer_addressed_to_its_device(
    device, admin: hookwire.AdminClient, group, receiver: Receiver
) -> None:
    device_id, client = device
    receiver.body = b"22.0 tomorrow"
    admin.create_webhook(group.id, {"event": "temp", "url": f"{receiver.base_url}/forecast"})

    with client.session() as session:
        session.subscribe(f"{device_id}/hook-response/")
        session.publish("temperature", "21.5")

        response = next_event_named(session, f"{device_id}/hook-response/temperature/0")
    assert response.data == "22.0 tomorrow"


def test_a_refused_publish_raises_the_servers_code_and_the_session_stays_usable(device) -> None:
    _, client = device

    with client.session() as session:
        with pytest.raises(hookwire.HookwireError) as raised:
            session.publish("temperature", "x" * 2000)
        ack = session.publish("temperature", "21.5")

    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.message.startswith("data")
    assert ack.seq == 2


def test_send_publish_numbers_publishes_from_one_and_their_acks_come_through_next_message(device) -> None:
    _, client = device

    with client.session() as session:
        assert [session.send_publish("a"), session.send_publish("b")] == [1, 2]
        acked_seqs: list[int] = []
        while len(acked_seqs) < 2:
            message = session.next_message(timeout=10)
            assert message is not None
            if message.WhichOneof("kind") == "ack":
                acked_seqs.append(message.ack.seq)

    assert acked_seqs == [1, 2]


def test_a_ping_is_answered_with_its_nonce(device) -> None:
    _, client = device

    with client.session() as session:
        session.ping(42)
        message = session.next_message(timeout=10)

    assert message is not None
    assert (message.WhichOneof("kind"), message.pong.nonce) == ("pong", 42)


def test_events_that_come_while_publish_waits_are_kept_for_next_event(device) -> None:
    _, client = device

    with client.session() as session:
        session.subscribe("temp")
        session.publish("temperature", "21.5")
        # The device's own event reached it before, or while, its ack did; either way it was kept.
        event = session.next_event(timeout=10)

    assert event is not None
    assert (event.name, event.data) == ("temperature", "21.5")


def test_an_unsubscribed_prefix_stops_its_events(device) -> None:
    _, client = device

    with client.session() as session:
        session.subscribe("temp")
        session.unsubscribe("temp")
        session.subscribe("humidity")
        session.publish("temperature", "21.5")
        session.publish("humidity", "40")

        assert session.next_event(timeout=10).name == "humidity"


def test_next_event_times_out_and_the_session_stays_usable(device) -> None:
    _, client = device

    with client.session() as session:
        session.subscribe("temp")
        with pytest.raises(hookwire.HookwireTimeoutError) as raised:
            session.next_event(timeout=0.2)
        session.publish("temperature", "21.5")

        assert session.next_event(timeout=10).name == "temperature"
    assert raised.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert isinstance(raised.value, TimeoutError)


def test_an_unknown_device_token_is_refused_when_the_session_opens(kernel: Kernel) -> None:
    with hookwire.DeviceClient(kernel.endpoint, "not-a-device-token") as client:
        with pytest.raises(hookwire.HookwireError) as raised:
            client.session()
        with pytest.raises(hookwire.HookwireError) as raised_by_publish:
            client.publish("temperature", "21.5")

    assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert raised_by_publish.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_a_closed_session_ends_its_events_and_refuses_to_send(device) -> None:
    _, client = device
    session = client.session()

    session.close()

    assert session.next_event(timeout=1) is None
    assert list(session) == []
    with pytest.raises(hookwire.HookwireError) as raised:
        session.publish("temperature", "21.5")
    assert raised.value.code is None


def test_deleting_a_device_ends_its_session(device, admin: hookwire.AdminClient) -> None:
    device_id, client = device

    with client.session() as session:
        session.publish("temperature", "21.5")
        admin.delete_device(device_id)

        try:
            while session.next_message(timeout=10) is not None:
                pass
        except hookwire.HookwireError as error:
            # Ended by the server with a status rather than cleanly: either is an end.
            assert not isinstance(error, hookwire.HookwireTimeoutError)
        with pytest.raises(hookwire.HookwireError):
            session.ping()
