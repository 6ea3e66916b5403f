"""Reproducible layers, platform parsing and the Quadlet unit, on fixture trees."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from edgefleet.image.build import parse_platforms
from edgefleet.image.errors import ImageInputError
from edgefleet.image.oci import write_layer
from edgefleet.image.run import ArchiveImage, quadlet_unit
from edgefleet.sandbox import Limits

pytestmark = pytest.mark.unit


def _tree(root: Path, mtime: int, mode: int) -> Path:
    (root / "b" / "c").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b" / "c" / "run.sh").write_text("#!/bin/sh\n")
    (root / "b" / "c" / "run.sh").chmod(0o700 | mode)
    (root / "b" / "link").symlink_to("c/run.sh")
    for p in [root / "a.txt", root / "b" / "c" / "run.sh"]:
        os.utime(p, (mtime, mtime))
    return root


def test_layer_bytes_do_not_depend_on_mtimes_or_modes(tmp_path: Path) -> None:
    one = write_layer(_tree(tmp_path / "1", 1000, 0o070), tmp_path / "1.tgz", epoch=7, comment="x")
    two = write_layer(_tree(tmp_path / "2", 99999, 0o005), tmp_path / "2.tgz", epoch=7, comment="x")
    assert one.blob.digest == two.blob.digest
    assert one.diff_id == two.diff_id
    with tarfile.open(one.path, "r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.txt", "b", "b/c", "b/c/run.sh", "b/link"]
    modes = {m.name: m.mode for m in members}
    assert modes == {"a.txt": 0o644, "b": 0o755, "b/c": 0o755, "b/c/run.sh": 0o755, "b/link": 0o777}
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 7)}


def test_layer_digest_changes_with_content_and_epoch(tmp_path: Path) -> None:
    root = _tree(tmp_path / "t", 1, 0)
    a = write_layer(root, tmp_path / "a.tgz", epoch=1, comment="")
    b = write_layer(root, tmp_path / "b.tgz", epoch=2, comment="")
    (root / "a.txt").write_text("changed")
    c = write_layer(root, tmp_path / "c.tgz", epoch=1, comment="")
    assert len({a.blob.digest, b.blob.digest, c.blob.digest}) == 3


def test_platforms() -> None:
    assert parse_platforms("linux/amd64,linux/arm64") == ["amd64", "arm64"]
    with pytest.raises(ImageInputError, match="linux/riscv64"):
        parse_platforms("linux/riscv64")
    with pytest.raises(ImageInputError, match="twice"):
        parse_platforms("linux/arm64,linux/arm64/v8")


def test_quadlet_unit_is_hardened_and_limited() -> None:
    health = ["/usr/bin/python3.11", "-m", "edgefleet.image.health", "http://127.0.0.1:8000/v2/health/ready"]
    image = ArchiveImage(
        "orientation:1.0.0",
        "amd64",
        "sha256:" + "1" * 64,
        "sha256:" + "2" * 64,
        {
            "config": {
                "User": "65532:65532",
                "Labels": {
                    "io.edgefleet.bundle.name": "orientation",
                    "io.edgefleet.bundle.version": "1.0.0",
                    "io.edgefleet.healthcheck": json.dumps(health),
                },
            }
        },
    )
    text = quadlet_unit(image, limits=Limits(cpus=1.5, memory_max=256 << 20, pids_max=64), http_port=9000)
    lines = text.splitlines()
    for expected in (
        "Image=localhost/orientation:1.0.0",
        "PublishPort=9000:8000",
        "ReadOnly=true",
        "User=65532",
        "NoNewPrivileges=true",
        "DropCapability=all",
        "HealthCmd=" + json.dumps(health),
        "PodmanArgs=--cpu-period 100000 --cpu-quota 150000",
        f"PodmanArgs=--memory {256 << 20} --memory-swap {256 << 20}",
        "PodmanArgs=--pids-limit 64",
        "ContainerName=edgefleet-orientation",
    ):
        assert expected in lines
