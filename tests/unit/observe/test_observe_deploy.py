"""deploy/: alert rules pass promtool and their unit tests; dashboards are well-formed and every
PromQL query parses into metric names (checked against live exports in the integration tests)."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edgefleet.testing.require import require_tool

pytestmark = pytest.mark.unit
DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}
)
BUILTIN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, labels."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    s = re.sub(r"\$\{?\w+\}?", "1", s)  # Grafana variables
    s = re.sub(r"\{[^}]*\}", "", s)  # label matchers
    s = re.sub(r"\[[^\]]*\]", "", s)  # range selectors
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)  # label lists
    s = re.sub(r"\boffset\s+\w+", " ", s)
    names = set()
    for m in _IDENT.finditer(s):
        rest = s[m.end() :].lstrip()
        word = m.group()
        if rest.startswith("(") or word in KEYWORDS or word[0].isdigit():
            continue
        names.add(word)
    return names


def dashboard_queries(folder: Path) -> Iterator[tuple[str, str]]:
    for path in sorted((folder / "dashboards").glob("*.json")):
        d = json.loads(path.read_text())
        for p in d["panels"]:
            for t in p.get("targets", []):
                yield f"{path.name}: {p['title']}", t["expr"]
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                q = re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", v["query"]["query"])
                yield f"{path.name}: ${v['name']}", q


def rule_queries(folder: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(folder.glob("*.rules.yml")):
        for g in yaml.safe_load(path.read_text())["groups"]:
            for r in g["rules"]:
                yield f"{path.name}: {r.get('alert') or r.get('record')}", r["expr"]


def recorded_names() -> set[str]:
    return {
        r["record"]
        for path in (DEPLOY / "prometheus" / "rules").glob("*.rules.yml")
        for g in yaml.safe_load(path.read_text())["groups"]
        for r in g["rules"]
        if "record" in r
    }


def test_parser_finds_metric_names() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, model) (rate(edgefleet_serve_request_duration_seconds_bucket"
        '{instance=~"$instance",le="0.1"}[$__rate_interval]))) / on(job) group_left(x) up offset 5m > bool 2'
    )
    assert promql_metric_names(expr) == {"edgefleet_serve_request_duration_seconds_bucket", "up"}
    assert promql_metric_names("edgefleet:serve_slow_ratio:rate5m > (14.4 * 0.01)") == {
        "edgefleet:serve_slow_ratio:rate5m"
    }


def test_rules_pass_promtool_check_and_unit_tests() -> None:
    require_tool("promtool")
    rules = DEPLOY / "prometheus" / "rules"
    check = subprocess.run(
        ["promtool", "check", "rules", *map(str, rules.glob("*.rules.yml"))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        ["promtool", "test", "rules", "tests.yml"], cwd=rules, capture_output=True, text=True, check=False
    )
    assert test.returncode == 0, test.stdout + test.stderr
    alerts = {n.split(": ")[1] for n, _ in rule_queries(rules)}
    assert {
        "EdgefleetDevicesOffline",
        "EdgefleetCrashLoop",
        "EdgefleetLatencySLOBurn",
        "EdgefleetRolloutHalted",
        "EdgefleetDeviceOffline",
        "EdgefleetWorkloadCrashLoop",
    } <= alerts


def test_prometheus_config_passes_promtool() -> None:
    require_tool("promtool")
    check = subprocess.run(
        ["promtool", "check", "config", "prometheus.yml"],
        cwd=DEPLOY / "prometheus",
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_dashboards_are_importable_and_use_known_recordings() -> None:
    paths = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert {p.stem for p in paths} == {
        "edgefleet-fleet",
        "edgefleet-device",
        "edgefleet-serving",
        "edgefleet-control-plane",
    }
    for path in paths:
        d = json.loads(path.read_text())
        assert d["uid"], path
        assert d["title"], path
        assert d["panels"], path
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), path
        assert any(v["type"] == "datasource" for v in d["templating"]["list"]), path
    recorded = recorded_names()
    for where, expr in dashboard_queries(DEPLOY / "grafana"):
        names = promql_metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        for n in names:
            assert n.startswith("edgefleet_") or n in BUILTIN or n in recorded, f"{where}: {n}"
