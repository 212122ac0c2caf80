"""The values the admin client gives back beyond the generated messages: `Page` (one page of a list) and `Webhook`
(a stored webhook with its definition parsed), and what it takes as a webhook definition (`Definition`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, Union

from hookwire.v1 import admin_pb2

#: A webhook definition: Particle webhook JSON, as a mapping or as JSON text (sent unchanged).
Definition = Union[Mapping[str, Any], str]

Item = TypeVar("Item")


@dataclass(frozen=True)
class Page(Generic[Item]):
    """One page of a list: its `items` and the `total` that match across every page."""

    items: list[Item]
    total: int


@dataclass(frozen=True)
class Webhook:
    """A stored webhook.

    `definition` is its Particle webhook JSON parsed into a dict; `definition_json` the same text exactly as
    stored (creating a webhook from it gives the same definition). `signing_secret` (`whsec_...`) is set only in
    the answer that created it, turned signing on, or rotated it; it is left out of `repr` so it does not end up
    in logs.

    Fields the server's `Webhook` message has beyond these (a newer kernel's) are kept in `extra` and read as
    attributes: `webhook.some_new_field`.
    """

    id: str
    group_id: str
    definition: dict[str, Any]
    created_at: str
    updated_at: str
    definition_json: str = field(default="", repr=False)
    signing_secret: str = field(default="", repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_proto(cls, message: admin_pb2.Webhook) -> Webhook:
        """Reads a `hookwire.v1.Webhook` message; any field not named above goes into `extra`."""
        known_fields = {"id", "group_id", "definition_json", "created_at", "updated_at", "signing_secret"}
        extra = {
            descriptor.name: _plain(getattr(message, descriptor.name))
            for descriptor in message.DESCRIPTOR.fields
            if descriptor.name not in known_fields
        }
        return cls(
            id=message.id,
            group_id=message.group_id,
            definition=json.loads(message.definition_json) if message.definition_json else {},
            created_at=message.created_at,
            updated_at=message.updated_at,
            definition_json=message.definition_json,
            # Read by name, so that this keeps working with protos from before the field existed.
            signing_secret=getattr(message, "signing_secret", ""),
            extra=extra,
        )

    def __getattr__(self, name: str) -> Any:
        # Called only for names that are not fields: those of `extra`. Read through `__dict__` so that a
        # half-built instance (copy, pickle) does not recurse.
        extra = self.__dict__.get("extra", {})
        if name in extra:
            return extra[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _plain(value: Any) -> Any:
    """A message field as plain Python: a map as a dict, a repeated field as a list, anything else as it is."""
    if hasattr(value, "items") and callable(value.items):
        return dict(value.items())
    if hasattr(value, "extend") and not isinstance(value, (str, bytes)):
        return list(value)
    return value
