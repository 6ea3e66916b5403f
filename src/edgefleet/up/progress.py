"""How `up` and `down` report what they are doing; the CLI renders it with rich."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "Silent"]


class Progress(Protocol):
    def step(self, title: str) -> None:
        """A step starts."""

    def done(self, detail: str) -> None:
        """The current step finished; ``detail`` says what it did."""

    def note(self, text: str) -> None:
        """Something worth a line while a step runs."""


class Silent:
    """Reports nothing."""

    def step(self, title: str) -> None:
        del title

    def done(self, detail: str) -> None:
        del detail

    def note(self, text: str) -> None:
        del text
