"""Identifiers: a prefix, then creation time (ms, hex) and randomness, so ids sort by creation."""

from __future__ import annotations

import secrets
import time

__all__ = ["new_id"]


def new_id(prefix: str) -> str:
    """``<prefix>_<12 hex ms since epoch><8 hex random>``: unique, and ordered by creation time."""
    return f"{prefix}_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(4)}"
