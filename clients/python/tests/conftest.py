"""Fixtures: one real kernel for the whole session (each test works in a group of its own, which keeps the suite
fast), admin clients of it, a fresh group per test, and an HTTP receiver."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

import hookwire

from harness import ROOT_TOKEN, Kernel, Receiver, start_kernel


@pytest.fixture(scope="session")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    running = start_kernel(tmp_path_factory.mktemp("hookwired"))
    yield running
    running.stop()


@pytest.fixture
def admin(kernel: Kernel) -> Iterator[hookwire.AdminClient]:
    with hookwire.AdminClient(kernel.endpoint, ROOT_TOKEN, timeout=10) as client:
        yield client


@pytest.fixture
def group(admin: hookwire.AdminClient, request: pytest.FixtureRequest) -> Iterator[hookwire.v1.admin_pb2.Group]:
    """A group of its own for each test, named after the test."""
    created = admin.create_group(request.node.name[:200])
    yield created
    try:
        admin.delete_group(created.id)
    except hookwire.HookwireError as error:
        # A test may have deleted it itself.
        if error.code != grpc.StatusCode.NOT_FOUND:
            raise


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.stop()
