"""What every command receives: the settings (loaded once) and the consoles to render on."""

from __future__ import annotations

from dataclasses import dataclass

import typer
from rich.console import Console

from edgefleet.config import Settings

__all__ = ["CliContext", "cli_context"]


@dataclass(frozen=True)
class CliContext:
    settings: Settings
    out: Console
    err: Console


def cli_context(ctx: typer.Context) -> CliContext:
    """The :class:`CliContext` the root callback stored on the click context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, CliContext):  # only when a command is invoked without the root app
        raise TypeError("edgefleet command invoked outside the edgefleet app")
    return obj
