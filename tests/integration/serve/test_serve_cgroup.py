"""`edgefleet serve` inside a real cgroup with a CPU quota sizes its threads from the quota."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as tg

from edgefleet.probe.cgroupfs import cgroup_mounts
from edgefleet.testing.require import require
from tests.integration.serve.serve_process import serve_process
from tests.unit.serve.serve_models import affine_model


def _quota_group() -> tuple[Path, dict[str, str]]:
    mounts = cgroup_mounts()
    name = f"edgefleet-serve-test-{uuid.uuid4().hex[:8]}"
    v1 = [m for m in mounts if m.version == 1 and "cpu" in m.controllers]
    if v1:
        return v1[0].mountpoint / name, {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}
    v2 = [m for m in mounts if m.version == 2]
    require(
        v2 and "cpu" in (v2[0].mountpoint / "cgroup.controllers").read_text().split(),
        "a cgroup CPU controller",
    )
    return v2[0].mountpoint / name, {"cpu.max": "100000 100000"}


@pytest.mark.integration
def test_threads_and_spinning_follow_a_real_cpu_quota(tmp_path: Path) -> None:
    """Under a 1-CPU quota: 1 intra-op thread, spinning off, and it serves."""
    require(os.geteuid() == 0, "root (to create cgroups)")
    require((os.cpu_count() or 1) >= 2, "at least 2 CPUs (so the quota, not the CPU set, bounds)")
    group, files = _quota_group()
    group.mkdir()
    try:
        for name, value in files.items():
            (group / name).write_text(value)
        model = affine_model(tmp_path / "m.onnx", 2.0)
        prelude = f"open({str(group / 'cgroup.procs')!r}, 'w').write('0')"
        with serve_process(model, "--no-cache", prelude=prelude) as srv:
            summary = "".join(srv.output)
            assert f"threads 1 (= CPU budget 1 from quota:{group}" in summary, summary
            assert "spinning off" in summary, summary
            client = tg.InferenceServerClient(srv.grpc)
            a = tg.InferInput("x", [1, 4], "FP32")
            a.set_data_from_numpy(np.ones((1, 4), np.float32))
            b = tg.InferInput("ids", [1, 2], "INT64")
            b.set_data_from_numpy(np.zeros((1, 2), np.int64))
            np.testing.assert_allclose(client.infer("m", [a, b]).as_numpy("y"), np.full((1, 4), 3.0))
            client.close()
    finally:
        group.rmdir()
