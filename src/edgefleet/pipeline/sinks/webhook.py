"""HTTP webhook sink: one JSON POST per result (standard library client, no extra dependency)."""

from __future__ import annotations

import json
import urllib.request
from urllib.parse import urlsplit

from edgefleet.pipeline.errors import PipelineFailedError
from edgefleet.pipeline.frame import Item
from edgefleet.pipeline.sinks.base import Message
from edgefleet.pipeline.spec import WebhookSinkSpec

__all__ = ["WebhookSink"]


class WebhookSink:
    def __init__(self, spec: WebhookSinkSpec) -> None:
        self.name = f"webhook:{spec.url}"
        self.spec = spec

    def open(self) -> None:
        if urlsplit(self.spec.url).scheme not in ("http", "https"):
            raise PipelineFailedError(
                f"webhook url {self.spec.url!r} is not allowed; allowed: http://..., https://...",
                code="pipeline.sink_unavailable",
            )

    def write(self, message: Message, item: Item) -> None:
        del item
        body = json.dumps(message, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", **self.spec.headers}
        request = urllib.request.Request(self.spec.url, data=body, headers=headers, method="POST")  # noqa: S310 - scheme checked in open()
        with urllib.request.urlopen(request, timeout=self.spec.timeout_s) as response:  # noqa: S310
            response.read()

    def close(self) -> None:
        """Each POST opens and closes its own connection."""
