"""The SDK's own logic, without a kernel: endpoints, tokens, errors and the webhook type."""

from __future__ import annotations

import copy
import pickle
from types import SimpleNamespace

import grpc
import pytest

import hookwire
from hookwire._connection import bearer_metadata, parse_endpoint
from hookwire.errors import status_code_from_name


@pytest.mark.parametrize(
    ("text", "target", "is_https"),
    [
        ("http://127.0.0.1:50051", "127.0.0.1:50051", False),
        ("http://hookwire.internal:8080/", "hookwire.internal:8080", False),
        ("https://hookwire.example.com", "hookwire.example.com:443", True),
        ("https://hookwire.example.com:8443", "hookwire.example.com:8443", True),
        ("http://hookwire.internal", "hookwire.internal:80", False),
        ("localhost:50051", "localhost:50051", False),
        ("[::1]:50051", "[::1]:50051", False),
        ("  localhost:50051\n", "localhost:50051", False),
    ],
)
def test_an_endpoint_is_read_as_a_grpc_target(text: str, target: str, is_https: bool) -> None:
    endpoint = parse_endpoint(text)

    assert (endpoint.target, endpoint.is_https) == (target, is_https)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "expected http://host:port"),
        ("ftp://localhost:21", "the scheme must be http or https"),
        ("localhost:port", "the port must be a number"),
        ("http://localhost:99999", "the port must be a number"),
        ("localhost:", "the port must be a number"),
        ("http://", "no host"),
        ("http://:50051", "no host"),
        ("http://localhost:50051/api", "no path or query"),
        ("localhost:50051?x=1", "no path or query"),
        ("http://user:secret@localhost:50051", "credentials"),
    ],
)
def test_a_bad_endpoint_is_refused_before_any_traffic(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        hookwire.AdminClient(text, "token")


def test_the_token_goes_as_bearer_authorization_metadata() -> None:
    assert bearer_metadata("abc.123") == (("authorization", "Bearer abc.123"),)


@pytest.mark.parametrize("token", ["", "tok en", "tok\nen", "jeton-é"])
def test_a_token_that_is_not_visible_ascii_is_refused(token: str) -> None:
    with pytest.raises(ValueError, match="invalid token"):
        hookwire.DeviceClient("localhost:50051", token)


def test_an_error_reads_as_its_message_then_its_code_name() -> None:
    error = hookwire.HookwireError(grpc.StatusCode.INVALID_ARGUMENT, "group_id: grp_x is not a group id")

    assert str(error) == "group_id: grp_x is not a group id (INVALID_ARGUMENT)"
    assert str(hookwire.HookwireError(grpc.StatusCode.UNAVAILABLE, "")) == "UNAVAILABLE"
    assert str(hookwire.HookwireError(None, "the session has ended")) == "the session has ended"


def test_errors_survive_pickling_with_their_code_and_message() -> None:
    for error in [
        hookwire.HookwireError(grpc.StatusCode.NOT_FOUND, "id: no such webhook"),
        hookwire.HookwireTimeoutError("nothing arrived within 1 s"),
    ]:
        copy = pickle.loads(pickle.dumps(error))

        assert (type(copy), copy.code, copy.message) == (type(error), error.code, error.message)


def test_device_error_code_names_map_to_status_codes_ignoring_case() -> None:
    assert status_code_from_name("RESOURCE_EXHAUSTED") == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_code_from_name("unavailable") == grpc.StatusCode.UNAVAILABLE
    assert status_code_from_name("TEAPOT") == grpc.StatusCode.UNKNOWN


def webhook_message(**fields: object) -> SimpleNamespace:
    """Stands in for a `hookwire.v1.Webhook` message of any version of the proto: the given fields and no other."""
    return SimpleNamespace(
        DESCRIPTOR=SimpleNamespace(fields=[SimpleNamespace(name=name) for name in fields]),
        **fields,
    )


def test_a_webhook_keeps_fields_it_does_not_know_as_attributes() -> None:
    message = webhook_message(
        id="whk_1",
        group_id="grp_1",
        definition_json='{"event": "temp", "url": "https://example.com"}',
        created_at="2026-01-01T00:00:00.000Z",
        updated_at="2026-01-01T00:00:00.000Z",
        num_deliveries=7,
    )

    webhook = hookwire.Webhook.from_proto(message)  # type: ignore[arg-type]

    assert webhook.definition == {"event": "temp", "url": "https://example.com"}
    assert webhook.signing_secret == ""
    assert webhook.num_deliveries == 7
    with pytest.raises(AttributeError):
        _ = webhook.no_such_field


def test_a_webhook_hides_its_signing_secret_from_repr() -> None:
    message = webhook_message(id="whk_1", group_id="grp_1", definition_json="{}", signing_secret="whsec_c2VjcmV0")
    message.created_at = message.updated_at = ""

    webhook = hookwire.Webhook.from_proto(message)  # type: ignore[arg-type]

    assert webhook.signing_secret == "whsec_c2VjcmV0"
    assert "whsec_" not in repr(webhook)


def test_a_webhook_copies_and_pickles_with_its_extra_fields() -> None:
    webhook = hookwire.Webhook(
        id="whk_1",
        group_id="grp_1",
        definition={"event": "temp"},
        created_at="",
        updated_at="",
        extra={"num_deliveries": 7},
    )

    assert copy.deepcopy(webhook) == webhook
    assert pickle.loads(pickle.dumps(webhook)).num_deliveries == 7
