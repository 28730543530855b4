"""Where allowed payloads go. The only module that hands bytes to the outside; it is called by the gate alone.

`OutboxTransport` writes each payload to a folder (one file per delivery) that a phone bridge, the federated
client or an uploader drains: on the emulated glasses that folder is the network.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Protocol


class Transport(Protocol):
    def deliver(self, destination: str, kind: str, data: bytes) -> None: ...


class OutboxTransport:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._seq = itertools.count()

    def deliver(self, destination: str, kind: str, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        suffix = ".bin" if data[:4] == b"GMA1" else ".json"  # binary arrays (egress.Arrays) or JSON
        name = f"{time.time_ns()}-{next(self._seq)}-{destination}-{kind}{suffix}"
        tmp = self.folder / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.folder / name)


class RoutingTransport:
    """Hands each delivery to the transport of its destination (the Matrix connector's outgoing queue for
    `matrix-homeserver`), everything else to `default`."""

    def __init__(self, default: Transport, routes: dict[str, Transport] | None = None):
        self.default = default
        self.routes = dict(routes or {})

    def deliver(self, destination: str, kind: str, data: bytes) -> None:
        self.routes.get(destination, self.default).deliver(destination, kind, data)


class MemoryTransport:
    """Keeps deliveries in memory: for callers that consume payloads in-process (the federated simulation)."""

    def __init__(self) -> None:
        self.delivered: list[tuple[str, str, bytes]] = []

    def deliver(self, destination: str, kind: str, data: bytes) -> None:
        self.delivered.append((destination, kind, data))
