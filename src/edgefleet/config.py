"""Typed settings, read once from the environment (prefix ``EDGEFLEET_``) and passed down.

Nothing in edgefleet reads the environment on import. The CLI calls :func:`load_settings` once per
process and hands the :class:`Settings` object to the services it builds; tests build their own
``Settings(...)`` directly.

Each subsystem that grows settings adds a nested model here (``serve``, ``agent``...), so that
``EDGEFLEET_<SECTION>__<FIELD>`` configures it and ``edgefleet config`` documents it in one place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from edgefleet.errors import ConfigError

__all__ = ["LogFormat", "Settings", "default_data_dir", "load_settings"]

LogFormat = Literal["auto", "json", "text"]
LogLevel = Literal["debug", "info", "warning", "error"]


def default_data_dir() -> Path:
    """Where edgefleet keeps state when nothing else is said: ``~/.local/share/edgefleet``."""
    return Path.home() / ".local" / "share" / "edgefleet"


class Settings(BaseSettings):
    """Process-wide settings. Every field can be set as ``EDGEFLEET_<FIELD>`` (upper case)."""

    model_config = SettingsConfigDict(
        env_prefix="EDGEFLEET_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Directory for local state: model caches, the server's database, the agent's state.",
    )
    log_level: LogLevel = Field(default="info", description="Lowest level of log records written.")
    log_format: LogFormat = Field(
        default="auto",
        description="'json' (one object per line), 'text' (for people), or 'auto': text on a TTY, else JSON.",
    )
    require_all: bool = Field(
        default=False,
        description=(
            "Tests only: a test that needs a missing system component fails instead of skipping. "
            "CI sets it to 1."
        ),
    )


def load_settings(**overrides: object) -> Settings:
    """Read the settings from the environment once, with explicit ``overrides`` on top.

    A bad value raises :class:`ConfigError` naming the variable and what is allowed.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        env_name = "EDGEFLEET_" + field.upper().replace(".", "__")
        raise ConfigError(
            f"setting {env_name}={first.get('input')!r}: {first['msg']}",
            code="config.invalid",
            field=field,
            env=env_name,
        ) from exc
