"""Profiles: declarative TOML files with ``include`` inheritance and a comment on each knob.

::

    description = "Steady inference latency"
    include = "balanced"                      # or a list; the including profile's values win

    [sysctl]
    "vm.swappiness" = { value = 10, comment = "Keep model weights in RAM." }

    [cpu]
    governor = { value = "performance", comment = "Highest clock, no ramp-up delay." }

Sections are knob plugins (sysctl, vm, sysfs, cpu, irq, pm_qos, boot); values take tuned's
modifiers (``a|b``, ``>N``, ``<N``). Built-in profiles ship inside the package; user profiles live
in directories searched first, so a user file with a built-in's name replaces it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefleet.tuning.errors import TuneProfileError, TuneProfileNotFoundError
from edgefleet.tuning.knob import Setting
from edgefleet.tuning.knobs import KINDS
from edgefleet.tuning.values import parse_target

__all__ = ["BUILTIN_DIR", "Profile", "ProfileInfo", "ProfileStore", "locate_line", "parse_profile_text"]

BUILTIN_DIR = Path(__file__).parent / "profiles"
NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]*")
_TOP = {"description", "include"}


@dataclass(frozen=True)
class Profile:
    """A profile with its includes resolved: ``settings`` in apply order, one per (knob, name)."""

    name: str
    description: str
    path: Path
    includes: tuple[str, ...]
    settings: tuple[Setting, ...]


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    description: str
    path: Path
    builtin: bool


@dataclass(frozen=True)
class _Raw:
    description: str
    includes: tuple[str, ...]
    settings: tuple[Setting, ...]


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def _key_forms(name: str) -> list[str]:
    return [f'"{name}"', f"'{name}'", name]


def locate_line(text: str, section: str, name: str) -> int:
    """The 1-based line where ``name`` is set in ``[section]`` (tomllib reports no lines for values).

    Scans the text: a ``[section]`` header followed by ``name =`` (bare or quoted), a
    ``[section."name"]`` table header, or a dotted key; falls back to the section's header, then 1.
    """
    lines = text.splitlines()
    current = ""
    header_line = 0
    last = name.rsplit(".", 1)[-1]
    candidates: list[tuple[int, int]] = []  # (quality, line)
    for i, line in enumerate(lines, start=1):
        m = _HEADER.match(line)
        if m:
            current = re.sub(r"\s+", "", m.group(1))
            if current == section and not header_line:
                header_line = i
            candidates.extend((0, i) for form in _key_forms(name) if current == f"{section}.{form}")
            continue
        if not (current == section or current.startswith(section + ".")):
            continue
        stripped = line.strip()
        candidates.extend((0, i) for f in _key_forms(name) if re.match(re.escape(f) + r"\s*=", stripped))
        if re.match(re.escape(last) + r"\s*=", stripped) and name.endswith(
            current.removeprefix(section + ".") + "." + last
        ):
            candidates.append((1, i))
    if candidates:
        return min(candidates)[1]
    return header_line or 1


def _scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        return str(value)
    return None


def _entries(section: str, table: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """Flatten ``[sysctl.vm] swappiness = ...`` / ``vm.swappiness = ...`` into dotted names."""
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and "value" not in value and section == "sysctl":
            yield from _entries(section, value, name)
        else:
            yield name, value


def parse_profile_text(text: str, source: Path) -> _Raw:
    """Parse one profile file (no includes resolved); every error names ``source`` and a line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise TuneProfileError(
            f"not valid TOML: {exc}", source=source, line=int(m.group(1)) if m else None
        ) from exc
    description = data.get("description", "")
    if not isinstance(description, str):
        raise TuneProfileError(
            "'description' must be a string", source=source, line=locate_line(text, "", "description")
        )
    include = data.get("include", [])
    includes = [include] if isinstance(include, str) else include
    if not isinstance(includes, list) or not all(isinstance(i, str) and NAME.fullmatch(i) for i in includes):
        raise TuneProfileError(
            "'include' must be a profile name or a list of names",
            source=source,
            line=locate_line(text, "", "include"),
        )
    settings: list[Setting] = []
    for section, table in data.items():
        if section in _TOP:
            continue
        if section not in KINDS:
            raise TuneProfileError(
                f"unknown knob section '{section}' (known: {', '.join(KINDS)})",
                source=source,
                line=locate_line(text, "", section)
                if not isinstance(table, dict)
                else _header_line(text, section),
            )
        if not isinstance(table, dict):
            raise TuneProfileError(
                f"section '{section}' must be a table", source=source, line=locate_line(text, "", section)
            )
        settings.extend(
            _setting(section, name, entry, source, locate_line(text, section, name))
            for name, entry in _entries(section, table)
        )
    return _Raw(description, tuple(includes), tuple(settings))


def _setting(section: str, name: str, entry: Any, source: Path, line: int) -> Setting:
    comment = ""
    value = entry
    if isinstance(entry, dict):
        if set(entry) - {"value", "comment"} or "value" not in entry:
            raise TuneProfileError(
                f"{section}.{name}: a knob table has 'value' and 'comment' only "
                f"(found: {', '.join(sorted(entry))})",
                source=source,
                line=line,
            )
        comment = entry.get("comment", "")
        if not isinstance(comment, str):
            raise TuneProfileError(f"{section}.{name}: 'comment' must be a string", source=source, line=line)
        value = entry["value"]
    raw = _scalar(value)
    if raw is None:
        raise TuneProfileError(
            f"{section}.{name}: the value must be a string or an integer, got {type(value).__name__}",
            source=source,
            line=line,
        )
    try:
        target = parse_target(raw)
    except ValueError as exc:
        raise TuneProfileError(f"{section}.{name} = {raw!r}: {exc}", source=source, line=line) from exc
    return Setting(section, name, raw, comment, target, source, line)


def _header_line(text: str, section: str) -> int:
    for i, line in enumerate(text.splitlines(), start=1):
        m = _HEADER.match(line)
        if m and re.sub(r"\s+", "", m.group(1)).split(".")[0] == section:
            return i
    return 1


class ProfileStore:
    """Finds profiles by name: user directories first (in order), then the built-ins."""

    def __init__(self, user_dirs: Sequence[Path] = (), builtin_dir: Path = BUILTIN_DIR) -> None:
        self.user_dirs = list(user_dirs)
        self.builtin_dir = builtin_dir

    def find(self, name: str) -> Path:
        if not NAME.fullmatch(name):
            raise TuneProfileNotFoundError(
                f"profile name {name!r} is not valid (lower-case letters, digits, '.', '_', '-')",
                profile=name,
            )
        for d in [*self.user_dirs, self.builtin_dir]:
            path = d / f"{name}.toml"
            if path.is_file():
                return path
        raise TuneProfileNotFoundError(
            f"no profile {name!r} (known: {', '.join(i.name for i in self.infos())})", profile=name
        )

    def infos(self) -> list[ProfileInfo]:
        seen: dict[str, ProfileInfo] = {}
        for d in [*self.user_dirs, self.builtin_dir]:
            if not d.is_dir():
                continue
            for path in sorted(d.glob("*.toml")):
                name = path.stem
                if name in seen or not NAME.fullmatch(name):
                    continue
                try:
                    desc = parse_profile_text(path.read_text(), path).description
                except TuneProfileError as exc:
                    desc = f"(invalid: {exc.message})"
                seen[name] = ProfileInfo(name, desc, path, d == self.builtin_dir)
        return sorted(seen.values(), key=lambda i: i.name)

    def load(self, name: str) -> Profile:
        """The profile with its includes merged (the including profile wins); cycles are errors."""
        path = self.find(name)
        merged: dict[tuple[str, str], Setting] = {}
        chain: list[str] = []
        description = self._merge(name, merged, chain, stack=())
        order = {k: i for i, k in enumerate(KINDS)}
        settings = sorted(merged.values(), key=lambda s: order[s.knob])
        return Profile(name, description, path, tuple(chain), tuple(settings))

    def _merge(
        self, name: str, merged: dict[tuple[str, str], Setting], chain: list[str], stack: tuple[str, ...]
    ) -> str:
        path = self.find(name)
        raw = parse_profile_text(path.read_text(), path)
        for inc in raw.includes:
            if inc in (*stack, name):
                raise TuneProfileError(
                    f"include cycle: {' -> '.join((*stack, name, inc))}",
                    source=path,
                    line=locate_line(path.read_text(), "", "include"),
                )
            try:
                self.find(inc)
            except TuneProfileNotFoundError as exc:
                raise TuneProfileError(
                    f"include {inc!r}: {exc.message}",
                    source=path,
                    line=locate_line(path.read_text(), "", "include"),
                ) from exc
            self._merge(inc, merged, chain, (*stack, name))
        for s in raw.settings:
            merged.pop((s.knob, s.name), None)
            merged[(s.knob, s.name)] = s
        if stack:
            chain.append(name)
        return raw.description
