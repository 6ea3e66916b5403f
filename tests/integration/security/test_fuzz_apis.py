"""schemathesis over the management and device APIs (from their OpenAPI document): no input gives a
5xx, and every 4xx is the edgefleet error body. The device API is fuzzed unsigned and signed with a
real device key (so the generated bodies reach the handlers). EDGEFLEET_SECURITY_FULL=1: more examples.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.integration.security.conftest import Device, SecServer, full, make_server, record

pytestmark = pytest.mark.integration

EXAMPLES = 100 if full() else 8
SESSION = requests.Session()
TALLY: dict[str, Counter[str]] = {"management": Counter(), "device": Counter()}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecServer]:
    yield from make_server(tmp_path_factory.mktemp("fuzz"), auth_failure_limit=0)


@pytest.fixture(scope="module")
def fuzz_device(fuzz_server: SecServer) -> Device:
    fuzz_server.upload("default", "det", "1.0.0")
    return fuzz_server.enroll("default")


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not full(),
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _operations(srv: SecServer, prefix: str) -> list[Any]:
    schema = schemathesis.openapi.from_dict(srv.app.openapi())
    ops = [r.ok() for r in schema.get_all_operations()]
    return [op for op in ops if op.path.startswith(prefix)]


def _fuzz(api: str, srv: SecServer, send: Any) -> None:
    failures: list[str] = []
    ops = _operations(srv, "/api/" if api == "management" else "/device/")
    assert ops
    for op in ops:

        @FUZZ
        @given(case=op.as_strategy())
        def run(case: Any) -> None:
            for r in send(case):
                _check(api, case, r)

        try:
            run()
        except AssertionError as exc:  # keep going: one report with every operation that failed
            failures.append(f"{op.label}: {str(exc)[:800]}")
    record(
        f"fuzz-{api}-api",
        trials=sum(TALLY[api].values()),
        outcomes=dict(TALLY[api]),
        notes=f"schemathesis, {len(ops)} operations, up to {EXAMPLES} examples each; 5xx must be 0",
    )
    assert not failures, "\n".join(failures)


def _send(srv: SecServer, case: Any, sign: Device | None = None, token: str | None = None) -> Any:
    """Send with ``requests`` (the kwargs are made for it), signing the exact bytes that go out."""
    kw = case.as_transport_kwargs(base_url=srv.url)
    kw["headers"] = {k: str(v) for k, v in (kw.get("headers") or {}).items() if k.lower() != "authorization"}
    if token:
        kw["headers"]["Authorization"] = f"Bearer {token}"
    kw.pop("cookies", None)
    prepared = SESSION.prepare_request(requests.Request(**kw))
    if sign is not None:
        body = prepared.body or b""
        body = body.encode() if isinstance(body, str) else body
        prepared.headers.update(sign.signed(prepared.method or "GET", prepared.path_url, body))
    return SESSION.send(prepared, timeout=60, allow_redirects=False)


def _check(api: str, case: Any, r: Any) -> None:
    TALLY[api][f"http_{r.status_code // 100}xx"] += 1
    assert r.status_code < 500, f"{case.method} {case.formatted_path}: {r.status_code} {r.text[:500]}"
    if 400 <= r.status_code != 405 and r.headers.get("content-type", "").startswith("application/json"):
        err = r.json()["error"]
        assert err["code"]
        assert err["message"]


def test_management_api_fuzz_never_5xx(fuzz_server: SecServer) -> None:
    _fuzz("management", fuzz_server, lambda case: [_send(fuzz_server, case, token=fuzz_server.admin)])


def test_device_api_fuzz_never_5xx(fuzz_server: SecServer, fuzz_device: Device) -> None:
    _fuzz(
        "device",
        fuzz_server,
        lambda case: [_send(fuzz_server, case), _send(fuzz_server, case, sign=fuzz_device)],
    )
