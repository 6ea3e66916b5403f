"""Export a profile to a tuned profile directory (``tuned.conf``, INI) and import one back.

Export flattens includes, so the result needs only tuned itself. Import maps the tuned plugins
edgefleet has knobs for (sysctl, sysfs, cpu, vm, irqbalance, bootloader, acpi, disk readahead) and
rejects the rest with one error that names every line it could not map; nothing is written then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgefleet.errors import ConflictError
from edgefleet.tuning.errors import TuneProfileError
from edgefleet.tuning.knob import Setting
from edgefleet.tuning.knobs import default_knobs
from edgefleet.tuning.profile import NAME, Profile, parse_profile_text
from edgefleet.tuning.roots import Roots, atomic_write
from edgefleet.tuning.values import parse_target

__all__ = ["export_tuned", "import_tuned", "render_tuned", "tuned_to_toml"]

THP_DEFRAG = "/sys/kernel/mm/transparent_hugepage/defrag"
PLATFORM_PROFILE = "/sys/firmware/acpi/platform_profile"
READ_AHEAD = "/sys/block/*/queue/read_ahead_kb"
_STOCK = {
    "latency-performance": "edge-latency",
    "throughput-performance": "edge-throughput",
    "powersave": "edge-powersave",
    "balanced": "balanced",
}


def _comment(setting: Setting) -> list[str]:
    return [f"# {line}" for line in setting.comment.splitlines()] if setting.comment else []


def render_tuned(profile: Profile) -> str:
    """The ``tuned.conf`` text for ``profile`` (includes already merged)."""
    sections: dict[str, list[str]] = {}

    def put(section: str, setting: Setting, key: str, value: str) -> None:
        sections.setdefault(section, []).extend([*_comment(setting), f"{key}={value}"])

    for s in profile.settings:
        if s.knob == "sysctl":
            put("sysctl", s, s.name, s.value)
        elif s.knob == "sysfs":
            put("sysfs", s, s.name, s.value)
        elif s.knob == "vm" and s.name == "transparent_hugepages":
            put("vm", s, "transparent_hugepages", s.value)
        elif s.knob == "vm":
            put("sysfs", s, THP_DEFRAG, s.value)
        elif s.knob == "cpu":
            put("cpu", s, s.name, s.value)
        elif s.knob == "pm_qos":
            put("cpu", s, "force_latency", s.value)
        elif s.knob == "irq":
            put("irqbalance", s, "banned_cpus", s.value)
        elif s.knob == "boot":
            # one cmdline_<suffix> per item (tuned joins them) keeps each item's comment
            suffix = re.sub(r"[^A-Za-z0-9_]", "_", s.name)
            put("bootloader", s, f"cmdline_edgefleet_{suffix}", f"{s.name}={s.value}")
    lines = [
        f"# tuned profile exported by edgefleet from '{profile.name}' ({profile.path.name}).",
        "[main]",
        f"summary={profile.description}",
    ]
    for section, body in sections.items():
        lines += ["", f"[{section}]", *body]
    return "\n".join(lines) + "\n"


def export_tuned(profile: Profile, directory: Path, *, force: bool = False) -> Path:
    """Write ``directory/tuned.conf``; refuses to overwrite one unless ``force``."""
    target = directory / "tuned.conf"
    if target.exists() and not force:
        raise ConflictError(
            f"{target} exists; pass --force to overwrite it", code="tune.export_exists", path=str(target)
        )
    atomic_write(target, render_tuned(profile).encode())
    return target


@dataclass
class _Line:
    number: int
    section: str
    plugin: str
    key: str
    value: str
    comment: str


def _parse_ini(text: str, source: Path, errors: list[str]) -> tuple[list[_Line], dict[str, str]]:
    lines: list[_Line] = []
    variables: dict[str, str] = {}
    section = ""
    pending: list[str] = []
    raw: list[tuple[int, str, str, str, str]] = []
    types: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped[0] in "#;":
            pending.append(stripped[1:].strip())
            continue
        m = re.fullmatch(r"\[([^\]]+)\]", stripped)
        if m:
            section = m.group(1).strip()
            pending = []
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not section:
            errors.append(f"{source}:{number}: {stripped!r}: expected 'key=value' inside a section")
            continue
        key, value = key.strip(), value.strip()
        if section == "variables":
            variables[key] = value
        elif key == "type":
            types[section] = value
        else:
            raw.append((number, section, key, value, " ".join(pending)))
        pending = []
    for number, sec, key, value, comment in raw:
        lines.append(_Line(number, sec, types.get(sec, sec), key, value, comment))
    return lines, variables


def _substitute(value: str, variables: dict[str, str]) -> str | None:
    def one(m: re.Match[str]) -> str:
        return variables.get(m.group(1), m.group(0))

    for _ in range(5):
        value = re.sub(r"\$\{([A-Za-z0-9_]+)\}", one, value)
    return None if "${" in value else value


Mapped = list[tuple[str, str, str]]  # (knob, name, value)


def _map_cpu(key: str, value: str) -> Mapped | str:
    if key in {"governor", "energy_performance_preference", "energy_perf_bias", "min_perf_pct", "boost"}:
        return [("cpu", key, value)]
    if key == "no_turbo" and value in {"0", "1"}:
        return [("cpu", "boost", "1" if value == "0" else "0")]
    if key == "force_latency":
        return [("pm_qos", "force_latency", value)]
    return f"no edgefleet knob for cpu option {key!r}"


def _map_vm(key: str, value: str) -> Mapped | str:
    if key in {"transparent_hugepages", "transparent_hugepage"}:
        return [("vm", "transparent_hugepages", value)]
    if key == "transparent_hugepage.defrag":
        return [("vm", "transparent_hugepage_defrag", value)]
    if key in {"dirty_ratio", "dirty_background_ratio"}:
        return [("sysctl", f"vm.{key}", value)]
    if key in {"dirty_bytes", "dirty_background_bytes"}:
        if value.endswith("%"):
            return [("sysctl", f"vm.{key.replace('bytes', 'ratio')}", value[:-1])]
        return [("sysctl", f"vm.{key}", value)]
    return f"no edgefleet knob for vm option {key!r}"


def _map_bootloader(key: str, value: str) -> Mapped | str:
    if not key.startswith("cmdline"):
        return f"bootloader option {key!r} is not a kernel command line (edgefleet only gives boot advice)"
    out: Mapped = []
    for word in value.split():
        name, _, arg = word.partition("=")
        out.append(("boot", name, arg or "1"))
    return out


def _map_disk(key: str, value: str) -> Mapped | str:
    if key != "readahead":
        return f"no edgefleet knob for disk option {key!r}"
    m = re.fullmatch(r"([<>]?)(\d+)\s*(s?)", value)
    if m is None:
        return f"readahead {value!r} is not a number"
    kb = int(m.group(2)) // 2 if m.group(3) else int(m.group(2))
    return [("sysfs", READ_AHEAD, f"{m.group(1)}{kb}")]


def _validate(mapped: Mapped, source: Path, line: int) -> str | None:
    knobs = default_knobs(Roots())
    for knob, key, val in mapped:
        try:
            target = parse_target(val)
        except ValueError as exc:
            return f"{knob}.{key} = {val!r}: {exc}"
        why = knobs[knob].validate(Setting(knob, key, val, "", target, source, line))
        if why:
            return why
    return None


_PLUGINS: dict[str, Callable[[str, str], Mapped | str]] = {
    "sysctl": lambda k, v: [("sysctl", k, v)],
    "sysfs": lambda k, v: (
        [("vm", "transparent_hugepage_defrag", v)] if k == THP_DEFRAG else [("sysfs", k, v)]
    ),
    "cpu": _map_cpu,
    "vm": _map_vm,
    "irqbalance": lambda k, v: (
        [("irq", "avoid_cpus", v)] if k == "banned_cpus" else f"irqbalance option {k!r}"
    ),
    "bootloader": _map_bootloader,
    "acpi": lambda k, v: (
        [("sysfs", PLATFORM_PROFILE, v)] if k == "platform_profile" else f"acpi option {k!r}"
    ),
    "disk": _map_disk,
}
_INSTANCE_OPTIONS = {
    "devices",
    "replace",
    "priority",
    "enabled",
    "uname_regex",
    "cpuinfo_regex",
    "devices_udev_regex",
}


def _map_line(ln: _Line, value: str, source: Path) -> Mapped | str:
    if ln.key in _INSTANCE_OPTIONS:
        return f"plugin instance option {ln.key!r} is not supported (edgefleet knobs apply to all devices)"
    mapper = _PLUGINS.get(ln.plugin)
    if mapper is None:
        return f"no edgefleet knob for tuned plugin '{ln.plugin}'"
    mapped = mapper(ln.key, value)
    if isinstance(mapped, str):
        return mapped
    return _validate(mapped, source, ln.number) or mapped


def tuned_to_toml(text: str, source: Path, name: str) -> str:
    """Translate a ``tuned.conf`` into an edgefleet profile; one error lists every unmappable line."""
    errors: list[str] = []
    lines, variables = _parse_ini(text, source, errors)
    description = f"Imported from {source}"
    includes: list[str] = []
    by_knob: dict[str, list[str]] = {}
    for ln in lines:
        where = f"{source}:{ln.number}: section '{ln.section}', {ln.key}={ln.value}"
        value = _substitute(ln.value, variables)
        if value is None:
            errors.append(f"{where}: tuned functions and unknown variables (${{...}}) cannot be mapped")
            continue
        if ln.section == "main":
            if ln.key == "summary":
                description = value
            elif ln.key == "include":
                includes += [_STOCK.get(i.strip(), i.strip()) for i in value.split(",") if i.strip()]
            else:
                errors.append(f"{where}: main option {ln.key!r} has no edgefleet equivalent")
            continue
        mapped = _map_line(ln, value, source)
        if isinstance(mapped, str):
            errors.append(f"{where}: {mapped}")
            continue
        for knob, key, val in mapped:
            comment = ln.comment or f"imported from tuned.conf line {ln.number}"
            by_knob.setdefault(knob, []).append(
                f"{json.dumps(key)} = {{ value = {json.dumps(val)}, comment = {json.dumps(comment)} }}"
            )
    bad_includes = [i for i in includes if not NAME.fullmatch(i)]
    if bad_includes:
        errors.append(f"{source}: include {', '.join(bad_includes)}: not a valid profile name")
    if errors:
        raise TuneProfileError(
            f"cannot import {len(errors)} line(s): " + "; ".join(errors), source=source, unmapped=errors
        )
    out = [f"description = {json.dumps(description)}"]
    if includes:
        out.append(f"include = {json.dumps(includes)}")
    for knob, entries in by_knob.items():
        out += ["", f"[{knob}]", *entries]
    text_out = "\n".join(out) + "\n"
    parse_profile_text(text_out, source.with_name(f"{name}.toml"))
    return text_out


def import_tuned(directory: Path, dest_dir: Path, name: str | None = None, *, force: bool = False) -> Path:
    """Read ``directory/tuned.conf`` and write ``dest_dir/NAME.toml`` (NAME: the directory's name)."""
    source = directory / "tuned.conf"
    try:
        text = source.read_text()
    except OSError as exc:
        raise TuneProfileError(f"cannot read tuned profile: {exc.strerror}", source=source) from exc
    name = name or directory.resolve().name
    if not NAME.fullmatch(name):
        raise TuneProfileError(
            f"profile name {name!r} is not valid (lower-case letters, digits, '.', '_', '-'); pass --name"
        )
    toml_text = tuned_to_toml(text, source, name)
    target = dest_dir / f"{name}.toml"
    if target.exists() and not force:
        raise ConflictError(
            f"{target} exists; pass --force to overwrite it", code="tune.import_exists", path=str(target)
        )
    atomic_write(target, toml_text.encode())
    return target
