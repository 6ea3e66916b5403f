"""The real-time policies' buffers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from edgefleet.pipeline.buffers import EveryBuffer, LatestBuffer
from edgefleet.pipeline.frame import Frame

pytestmark = pytest.mark.unit


def _frame(source: str, index: int) -> Frame:
    return Frame(source, index, np.zeros((1, 1, 3), np.uint8), captured=float(index), wall=0.0)


def test_pipeline_latest_keeps_the_newest_frame_per_source_and_counts_stale_ones() -> None:
    stale: list[Frame] = []
    buf = LatestBuffer(stale.append)
    stop = threading.Event()
    for i in range(5):
        buf.put(_frame("a", i), stop)
    buf.put(_frame("b", 2), stop)
    taken = buf.take(4, timeout=0.1)
    assert [(f.source, f.index) for f in taken] == [("b", 2), ("a", 4)]
    assert [f.index for f in stale] == [0, 1, 2, 3]
    assert buf.take(4, timeout=0.01) == []
    buf.close()
    assert buf.drained


def test_pipeline_every_keeps_every_frame_in_order_and_blocks_when_full() -> None:
    buf = EveryBuffer(2)
    stop = threading.Event()
    buf.put(_frame("a", 0), stop)
    buf.put(_frame("a", 1), stop)
    blocked = threading.Thread(target=buf.put, args=(_frame("a", 2), stop))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive()
    assert [f.index for f in buf.take(1, 0.1)] == [0]
    blocked.join(2)
    assert [f.index for f in buf.take(5, 0.1)] == [1, 2]
