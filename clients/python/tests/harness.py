"""The test harness: a real `hookwired` process on a free port with a fresh SQLite database, and a receiver that
records the HTTP requests webhooks send.

The kernel binary is `$HOOKWIRE_BIN`, or else the workspace's `target/debug/hookwired` (under `$CARGO_TARGET_DIR`
when set), built with cargo when missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import hookwire

ROOT_TOKEN = "python-sdk-test-root-token"
# clients/python/tests -> the workspace root.
WORKSPACE_ROOT = Path(__file__).resolve().parents[3]
READY_TIMEOUT_SECONDS = 30.0


def hookwired_binary() -> Path:
    """Returns the kernel binary to test against, building the workspace's debug binary when it is missing."""
    from_environment = os.environ.get("HOOKWIRE_BIN")
    if from_environment:
        binary = Path(from_environment)
        if not binary.is_file():
            pytest.fail(f"HOOKWIRE_BIN={from_environment}: no such file")
        return binary
    target_folder = WORKSPACE_ROOT / os.environ.get("CARGO_TARGET_DIR", "target")
    binary = target_folder / "debug" / "hookwired"
    if not binary.is_file():
        cargo = shutil.which("cargo")
        if cargo is None:
            pytest.fail(f"{binary} is missing and cargo is not on PATH: build it, or set HOOKWIRE_BIN")
        subprocess.run([cargo, "build", "-p", "hookwire-kernel", "--bin", "hookwired"], cwd=WORKSPACE_ROOT, check=True)
    return binary


@dataclass
class Kernel:
    """A running `hookwired`: its gRPC endpoint and the JSON log lines it has written so far."""

    process: subprocess.Popen
    endpoint: str
    log: list[dict] = field(default_factory=list)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_kernel(database_folder: Path) -> Kernel:
    """Starts `hookwired` on port 0 and returns once it wrote its ready file (`--ready-file`) with its address."""
    ready_file = database_folder / "ready.json"
    command = [
        str(hookwired_binary()),
        "--listen",
        "127.0.0.1:0",
        "--log-format",
        "json",
        "--allow-destination",
        "127.0.0.0/8",
        "--database",
        f"sqlite://{database_folder / 'db.sqlite'}",
        "--ready-file",
        str(ready_file),
    ]
    # No web console: it would take the same default port in every test process.
    environment = {**os.environ, "HOOKWIRE_ROOT_TOKEN": ROOT_TOKEN, "RUST_LOG": "info", "HOOKWIRE_CONSOLE_LISTEN": "off"}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log: list[dict] = []

    def read_log() -> None:
        # Runs for the life of the process, so that it never blocks on a full pipe.
        assert process.stderr is not None
        for line in process.stderr:
            try:
                log.append(json.loads(line))
            except ValueError:
                continue

    threading.Thread(target=read_log, name="hookwired-log", daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while not ready_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"hookwired was not ready within {READY_TIMEOUT_SECONDS} s; its log: {log}")
        time.sleep(0.02)
    address = json.loads(ready_file.read_text())["address"]
    return Kernel(process=process, endpoint=f"http://{address}", log=log)


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the receiver got; header names are lowercase."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on a free loopback port that records every request and answers `status` with `body`."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.status = 200
        self.body = b""
        self._condition = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _record_and_answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                received = ReceivedRequest(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=body,
                )
                with receiver._condition:
                    receiver.requests.append(received)
                    receiver._condition.notify_all()
                self.send_response(receiver.status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(receiver.body)))
                self.end_headers()
                self.wfile.write(receiver.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _record_and_answer

            def log_message(self, format: str, *arguments: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver", daemon=True)
        self._thread.start()

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedRequest]:
        """Waits until `count` requests came and returns them all; fails the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"the receiver got {len(self.requests)} requests within {timeout} s, not {count}")
                self._condition.wait(remaining)
            return list(self.requests)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def next_event_named(
    stream: hookwire.EventStream | hookwire.DeviceSession, name: str, timeout: float = 10.0
) -> hookwire.v1.common_pb2.Event:
    """Reads events off a stream until one named `name` comes; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        try:
            event: hookwire.v1.common_pb2.Event | None = stream.next_event(timeout=max(remaining, 0.0))
        except hookwire.HookwireTimeoutError:
            pytest.fail(f"no event named {name!r} within {timeout} s; saw {seen}")
        if event is None:
            pytest.fail(f"the stream ended before an event named {name!r}; saw {seen}")
        if event.name == name:
            return event
        seen.append(event.name)
