"""JSON Lines file sink: one message a line, flushed as it is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from edgefleet.pipeline.errors import PipelineFailedError
from edgefleet.pipeline.frame import Item
from edgefleet.pipeline.sinks.base import Message

__all__ = ["JsonlSink"]


class JsonlSink:
    def __init__(self, path: Path) -> None:
        self.name = f"jsonl:{path.name}"
        self.path = path
        self._file: IO[str] | None = None

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise PipelineFailedError(
                f"cannot open {self.path} for writing: {exc}", code="pipeline.sink_unavailable"
            ) from exc

    def write(self, message: Message, item: Item) -> None:
        del item
        if self._file is None:
            self.open()
        assert self._file is not None  # noqa: S101 - open() sets it or raises
        self._file.write(json.dumps(message, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
