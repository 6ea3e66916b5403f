"""The sink seam: every result message goes to each sink, in order, from one thread."""

from __future__ import annotations

from typing import Any, Protocol

from edgefleet.pipeline.frame import Item

__all__ = ["Message", "Sink"]

Message = dict[str, Any]
"""JSON-ready: ``pipeline``, ``source``, ``frame``, ``captured_at``, ``pts``, ``latency_s``, ``results``."""


class Sink(Protocol):
    name: str

    def open(self) -> None: ...

    def write(self, message: Message, item: Item) -> None:
        """Deliver one message; ``item`` has the frame and raw results for sinks that draw."""
        ...

    def close(self) -> None: ...
