"""schemathesis over the published OpenAPI: no generated request gets a 5xx."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from edgefleet.server import ServerSettings, open_server
from edgefleet.server.api import create_app
from edgefleet.server.service import migrate
from tests.integration.server.conftest import FakeClock, serve_in_thread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings_ = ServerSettings(data_dir=Path(tmp_path_factory.mktemp("fuzz")))
    migrate(settings_)
    ctx, admin = open_server(settings_, clock=FakeClock())
    app = create_app(ctx, background=False)
    with serve_in_thread(app) as url:
        yield {"url": url, "app": app, "token": admin}
    ctx.db.dispose()


def test_no_server_errors(live: dict[str, Any]) -> None:
    """Every operation, with generated paths, queries and bodies, answers below 500."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", live["app"])
    headers = {"Authorization": f"Bearer {live['token']}"}
    failures: list[str] = []
    statuses: list[int] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            if case.path_parameters and "project" in case.path_parameters:
                case.path_parameters["project"] = "default"
            response = case.call(base_url=live["url"], headers=headers)
            statuses.append(response.status_code)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )

        run()
    assert operations > 20
    assert any(200 <= s < 300 for s in statuses), collections.Counter(statuses)
    assert not failures, "\n".join(failures[:10])
