"""Group tokens from Python against a real kernel: created with a role, listed without their secrets, scoped to
their group, and revoked."""

from __future__ import annotations

import grpc
import pytest

import hookwire
from hookwire.v1 import tokens_pb2

from harness import Kernel


def test_a_viewer_token_reads_its_group_but_may_not_change_it(
    kernel: Kernel, admin: hookwire.AdminClient, group
) -> None:
    device = admin.create_device(group.id, "sensor").device
    created = admin.create_token(group.id, "viewer", "dashboard")

    assert created.token.startswith("hwa_")
    token = created.admin_token
    assert token.id.startswith("tok_")
    assert (token.group_id, token.name, token.role) == (group.id, "dashboard", tokens_pb2.ROLE_VIEWER)

    with hookwire.AdminClient(kernel.endpoint, created.token, timeout=10) as viewer:
        assert viewer.get_group(group.id).name == group.name
        assert [listed.id for listed in viewer.list_devices(group.id)] == [device.id]
        with pytest.raises(hookwire.HookwireError) as raised:
            viewer.create_device(group.id, "intruder")
        assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(hookwire.HookwireError) as raised:
            viewer.create_token(group.id, "editor")
        assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED

    # The refused create left nothing behind.
    assert [listed.id for listed in admin.list_devices(group.id)] == [device.id]


def test_tokens_are_listed_without_secrets_scoped_to_their_group_and_revoked(
    kernel: Kernel, admin: hookwire.AdminClient, group
) -> None:
    viewer = admin.create_token(group.id, "viewer")
    editor = admin.create_token(group.id, "editor", "ci")

    listed = admin.list_tokens(group.id)
    assert [token.id for token in listed] == [viewer.admin_token.id, editor.admin_token.id]
    assert [token.role for token in listed] == [tokens_pb2.ROLE_VIEWER, tokens_pb2.ROLE_EDITOR]
    assert editor.token not in str(listed) and viewer.token not in str(listed)

    other_group = admin.create_group("someone else's")
    try:
        with hookwire.AdminClient(kernel.endpoint, editor.token, timeout=10) as client:
            assert client.create_device(group.id, "allowed").device.group_id == group.id
            with pytest.raises(hookwire.HookwireError) as raised:
                client.create_device(other_group.id, "elsewhere")
            assert raised.value.code == grpc.StatusCode.PERMISSION_DENIED

            admin.revoke_token(editor.admin_token.id)

            with pytest.raises(hookwire.HookwireError) as raised:
                client.get_group(group.id)
            assert raised.value.code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        admin.delete_group(other_group.id)
    assert [token.id for token in admin.list_tokens(group.id)] == [viewer.admin_token.id]

    with pytest.raises(ValueError):
        admin.create_token(group.id, "owner")
