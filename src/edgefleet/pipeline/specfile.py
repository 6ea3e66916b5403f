"""Load a pipeline spec from TOML or YAML; every error names the key and the line it is on.

``tomllib`` keeps no positions, so TOML lines are found by scanning the text: table headers
(``[a.b]``, ``[[a]]`` with a running index per array of tables) and ``key = value`` lines give each
key path its first line; an error's location is matched to the longest known prefix. YAML nodes
carry their own marks.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgefleet.pipeline.errors import PipelineSpecError
from edgefleet.pipeline.spec import Loc, PipelineSpec, cross_check

__all__ = ["LoadedSpec", "load_spec", "parse_spec"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec and the folder its relative paths start from."""

    spec: PipelineSpec
    base_dir: Path
    path: Path | None


def load_spec(path: Path) -> LoadedSpec:
    """Read and validate the spec at ``path`` (``.toml``, ``.yaml`` or ``.yml``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PipelineSpecError(
            f"spec file {path} does not exist", code="pipeline.spec_not_found", path=str(path)
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineSpecError(f"cannot read spec file {path}: {exc}", path=str(path)) from exc
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "toml"
    spec = parse_spec(text, fmt=fmt, origin=str(path))
    return LoadedSpec(spec=spec, base_dir=path.resolve().parent, path=path)


def parse_spec(text: str, *, fmt: str = "toml", origin: str = "<spec>") -> PipelineSpec:
    """Validate spec ``text`` (``toml`` or ``yaml``); raise :class:`PipelineSpecError` naming key and line."""
    if fmt == "toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = _toml_error_line(str(exc))
            raise PipelineSpecError(f"{origin}:{line or '?'}: not valid TOML: {exc}", line=line) from exc
        lines = _toml_lines(text)
    elif fmt == "yaml":
        data, lines = _load_yaml(text, origin)
    else:
        raise PipelineSpecError(f"spec format {fmt!r} is not allowed; allowed: toml, yaml", key="format")
    if not isinstance(data, dict):
        raise PipelineSpecError(f"{origin}: the spec must be a table/mapping at the top level", line=1)
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _data_loc(data, tuple(err["loc"]), missing=err["type"] == "missing")
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        raise _spec_error(origin, loc, lines, _message(err), count=len(exc.errors())) from exc
    problems = cross_check(spec)
    if problems:
        loc, message = problems[0]
        raise _spec_error(origin, loc, lines, message, count=len(problems))
    return spec


def _spec_error(
    origin: str, loc: Loc, lines: dict[Loc, int], message: str, *, count: int
) -> PipelineSpecError:
    key = _key_text(loc)
    line = _line_of(loc, lines)
    more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
    where = f"{origin}:{line}" if line else origin
    return PipelineSpecError(f"{where}: {key or '<top level>'}: {message}{more}", key=key, line=line)


def _message(err: Any) -> str:
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ")
    ctx = err.get("ctx") or {}
    if err["type"] == "union_tag_invalid":
        msg = f"kind {ctx.get('tag')!r} is not allowed; allowed: {ctx.get('expected_tags')}"
    elif err["type"] == "union_tag_not_found":
        msg = f"'kind' is required; allowed: {ctx.get('expected_tags', '')}".rstrip(": ")
    elif err["type"] == "extra_forbidden":
        msg = "unknown key (not allowed here)"
    elif err["type"] == "literal_error":
        msg = f"value {err.get('input')!r} is not allowed; allowed: {ctx.get('expected')}"
    return msg


def _data_loc(data: Any, loc: Loc, *, missing: bool = False) -> Loc:
    """Drop the parts of a pydantic location that are not in the data (union tags, validator names);
    a ``missing`` key is named, and its table's line is the best line for it."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            out.append(part)
    if missing and loc and loc[-1] not in out[-1:]:
        out.append(loc[-1])
    return tuple(out)


def _key_text(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _line_of(loc: Loc, lines: dict[Loc, int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _toml_error_line(message: str) -> int | None:
    m = re.search(r"line (\d+)", message)
    return int(m.group(1)) if m else None


def _split_key(key: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _toml_lines(text: str) -> dict[Loc, int]:
    """First line of every table and key path in TOML ``text`` (array-of-table items indexed)."""
    lines: dict[Loc, int] = {}
    counts: dict[Loc, int] = {}
    table: Loc = ()
    in_multiline = False
    for number, raw in enumerate(text.splitlines(), start=1):
        if in_multiline:
            if raw.count('"""') % 2 == 1 or raw.count("'''") % 2 == 1:
                in_multiline = False
            continue
        header = _HEADER.match(raw)
        if header and not _KEY.match(raw):
            names = _split_key(header.group(2))
            path = _resolve_table(names, counts)
            if header.group(1) == "[[":
                base = tuple(path)
                counts[base] = counts.get(base, -1) + 1
                lines.setdefault(base, number)
                table = (*base, counts[base])
            else:
                table = tuple(path)
            lines.setdefault(table, number)
            continue
        key = _KEY.match(raw)
        if key:
            full: Loc = (*table, *_split_key(key.group(1)))
            for n in range(len(table) + 1, len(full) + 1):
                lines.setdefault(full[:n], number)
            rest = raw[key.end() :]
            if rest.count('"""') == 1 or rest.count("'''") == 1:
                in_multiline = True
    return lines


def _resolve_table(names: list[str], counts: dict[Loc, int]) -> list[str | int]:
    """``[models.preprocess]`` after ``[[models]]`` means the current models item's preprocess."""
    path: list[str | int] = []
    for i, name in enumerate(names):
        path.append(name)
        current = tuple(path)
        if current in counts and i < len(names) - 1:
            path.append(counts[current])
    return path


def _load_yaml(text: str, origin: str) -> tuple[Any, dict[Loc, int]]:
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PipelineSpecError(f"{origin}:{line or '?'}: not valid YAML: {exc}", line=line) from exc
    lines: dict[Loc, int] = {}

    def walk(n: Any, loc: Loc) -> None:
        lines.setdefault(loc, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = (*loc, str(k.value))
                lines.setdefault(key, k.start_mark.line + 1)
                walk(v, key)
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*loc, i))

    if node is not None:
        walk(node, ())
    return data, lines
