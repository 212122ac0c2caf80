"""The clients, where they were before they were split into modules: `AdminClient` and `EventStream` (in
`hookwire.admin`), `DeviceClient` and `DeviceSession` (in `hookwire.device`), `Page`, `Webhook` and `Definition`.

Kept so that `from hookwire.client import ...` keeps working; `from hookwire import ...` is the usual way.
"""

from hookwire._models import Definition, Page, Webhook
from hookwire.admin import AdminClient, EventStream
from hookwire.device import DeviceClient, DeviceSession

__all__ = ["AdminClient", "Definition", "DeviceClient", "DeviceSession", "EventStream", "Page", "Webhook"]
