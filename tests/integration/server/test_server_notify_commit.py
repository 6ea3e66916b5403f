"""A change wakes a device's long-poll only once it is committed (on SQLite and PostgreSQL).

Woken before the commit, the poll re-read the old rows and went back to waiting until its next
database recheck (``poll_recheck_seconds``, 5 s): updates reached devices seconds late.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from edgefleet.server import ServerContext, ServerSettings, open_server


@pytest.fixture
def ctx_on_loop(db_settings: ServerSettings) -> Iterator[tuple[ServerContext, asyncio.AbstractEventLoop]]:
    ctx, _ = open_server(db_settings)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    ctx.notifier.bind(loop)
    try:
        yield ctx, loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        ctx.db.dispose()


def test_a_waiting_long_poll_is_woken_after_the_commit_and_not_on_rollback(
    ctx_on_loop: tuple[ServerContext, asyncio.AbstractEventLoop],
) -> None:
    ctx, loop = ctx_on_loop
    woken = asyncio.run_coroutine_threadsafe(ctx.notifier.wait("dev_a", 60), loop)
    time.sleep(0.2)
    with ctx.db.session(write=True) as s:
        ctx.notifier.notify_after_commit(s, ["dev_a"])
        time.sleep(0.5)  # still inside the transaction: a poll woken now would read the old rows
        assert not woken.done()
    assert woken.result(10) is True

    not_woken = asyncio.run_coroutine_threadsafe(ctx.notifier.wait("dev_b", 2), loop)
    time.sleep(0.2)

    def rolled_back() -> None:
        with ctx.db.session(write=True) as s:
            ctx.notifier.notify_after_commit(s, ["dev_b"])
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        rolled_back()
    assert not_woken.result(10) is False
