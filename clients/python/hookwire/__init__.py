"""Python SDK for hookwire, the self-hosted webhook engine.

- `AdminClient` manages groups, devices, webhooks and group tokens with an admin token, and follows a group's
  live events (`EventStream`).
- `DeviceClient` publishes as one device with its device token, either one event at a time or over a
  long-lived `DeviceSession` that also receives the events the device subscribed to.

Every call fails with `HookwireError`, whose `code` is the gRPC status code (`grpc.StatusCode`) and `message` what
the server said (naming the field at fault). The messages are the types generated from
`proto/hookwire/v1/*.proto` at build time, in `hookwire.v1` (`common_pb2`, `admin_pb2`, `device_pb2`, `tokens_pb2`); the
protos' comments document every field.

The modules: `admin` (`AdminClient`, `EventStream`), `device` (`DeviceClient`, `DeviceSession`), `errors`; the
private `_models` (`Page`, `Webhook`), `_connection` (endpoint, channel, token metadata, unary calls) and
`_streams` (the background reader of streaming calls). `client` re-exports the clients from where they were
before the split.

    import hookwire

    admin = hookwire.AdminClient("127.0.0.1:50051", "root-token")
    group = admin.create_group("greenhouse")
    created = admin.create_device(group.id, "sensor-1")
    admin.create_webhook(group.id, {"event": "temp", "url": "https://example.com/temp"})

    device = hookwire.DeviceClient("127.0.0.1:50051", created.token)
    with device.session() as session:
        session.subscribe("hook-sent/temp")
        ack = session.publish("temp", "21.5")
        print(ack.event_id, "matched", ack.num_deliveries, "webhooks")
        print(session.next_event(timeout=10).name)   # hook-sent/temp
"""

from hookwire._version import __version__

try:
    from hookwire import v1 as _generated  # noqa: F401  (checked here to explain a missing build step)
except ImportError as error:  # pragma: no cover - only outside an installed package
    raise ImportError(
        "hookwire.v1, the code generated from hookwire's protos, is missing: this is the package's source folder. "
        "Install the package (pip install clients/python, or pip install -e clients/python to work on it) and "
        "import it from outside clients/python"
    ) from error

from hookwire._models import Definition, Page, Webhook
from hookwire.admin import AdminClient, EventStream
from hookwire.device import DeviceClient, DeviceSession
from hookwire.errors import HookwireError, HookwireTimeoutError

__all__ = [
    "AdminClient",
    "Definition",
    "DeviceClient",
    "DeviceSession",
    "EventStream",
    "HookwireError",
    "HookwireTimeoutError",
    "Page",
    "Webhook",
    "__version__",
]
