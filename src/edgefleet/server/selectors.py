"""Label selectors, Kubernetes style: ``app=cam,tier!=dev,region in (eu,us),gpu,!legacy``.

An empty selector matches every device. Parsing errors name the offending term.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from edgefleet.server.errors import ServerInputError

__all__ = ["LABEL_KEY", "LABEL_VALUE", "Selector", "validate_labels"]

LABEL_KEY = r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,62}[A-Za-z0-9])?"
LABEL_VALUE = r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?"
_KEY = re.compile(f"^{LABEL_KEY}$")
_VALUE = re.compile(f"^{LABEL_VALUE}$")
_SET = re.compile(rf"^\s*({LABEL_KEY})\s+(in|notin)\s*\(([^()]*)\)\s*$")
_EQ = re.compile(rf"^\s*({LABEL_KEY})\s*(==|=|!=)\s*({LABEL_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({LABEL_KEY})\s*$")

Op = Literal["=", "!=", "in", "notin", "exists", "!exists"]


@dataclass(frozen=True)
class _Req:
    key: str
    op: Op
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.key)
        match self.op:
            case "=" | "in":
                return v is not None and v in self.values
            case "!=" | "notin":
                return v is None or v not in self.values
            case "exists":
                return v is not None
            case "!exists":
                return v is None


@dataclass(frozen=True)
class Selector:
    text: str
    requirements: tuple[_Req, ...]

    @classmethod
    def parse(cls, text: str | None, field: str = "selector") -> Selector:
        text = (text or "").strip()
        if len(text) > 4096:
            raise ServerInputError(f"{field}: longer than 4096 characters", field=field)
        reqs: list[_Req] = []
        for term in _split(text):
            if not term.strip():
                raise ServerInputError(
                    f"{field}: empty term in {text!r}", code="server.invalid_selector", field=field
                )
            reqs.append(_parse_term(term, field))
        return cls(text, tuple(reqs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _split(text: str) -> list[str]:
    if not text:
        return []
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _parse_term(term: str, field: str) -> _Req:
    if m := _SET.match(term):
        values = [v.strip() for v in m.group(4).split(",")]
        if not values or any(not _VALUE.match(v) or not v for v in values):
            raise ServerInputError(
                f"{field}: bad value list in {term.strip()!r}", code="server.invalid_selector", field=field
            )
        return _Req(m.group(1), "in" if m.group(3) == "in" else "notin", frozenset(values))
    if m := _EQ.match(term):
        op: Op = "!=" if m.group(3) == "!=" else "="
        return _Req(m.group(1), op, frozenset({m.group(4)}))
    if m := _EXISTS.match(term):
        return _Req(m.group(2), "!exists" if m.group(1) else "exists", frozenset())
    raise ServerInputError(
        f"{field}: cannot parse {term.strip()!r}; use key=value, key!=value, key in (a,b), key notin (a), "
        "key or !key",
        code="server.invalid_selector",
        field=field,
    )


def validate_labels(labels: Mapping[str, str], field: str = "labels") -> dict[str, str]:
    """Labels as given when every key and value is well-formed; otherwise an error naming the label."""
    if len(labels) > 64:
        raise ServerInputError(f"{field}: at most 64 labels", field=field)
    for k, v in labels.items():
        if not _KEY.match(k):
            raise ServerInputError(
                f"{field}.{k}: label keys are 1-64 of [A-Za-z0-9._/-]",
                code="server.invalid_label",
                field=f"{field}.{k}",
            )
        if not isinstance(v, str) or not _VALUE.match(v):
            raise ServerInputError(
                f"{field}.{k}: label values are 0-63 of [A-Za-z0-9._-]",
                code="server.invalid_label",
                field=f"{field}.{k}",
            )
    return dict(labels)
