"""Fixture boards (one with cpufreq, one without) and a tuner bound to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgefleet.tuning import NoTuned, ProfileStore, Roots, Tuner
from edgefleet.tuning.fake import fake_board
from edgefleet.tuning.knobs.vm import bracketed


def snapshot(base: Path) -> dict[str, bytes]:
    """Every file below ``base`` with its bytes (to compare a tree byte for byte).

    THP files are reduced to their ``[bracketed]`` choice: the kernel shows the brackets again after a
    write, a plain fixture file cannot (the integration tests compare the real files byte for byte).
    """
    out: dict[str, bytes] = {}
    for p in sorted(base.rglob("*")):
        if p.is_file():
            key = str(p.relative_to(base))
            data = p.read_bytes()
            out[key] = bracketed(data.decode()).encode() if "transparent_hugepage" in key else data
    return out


@pytest.fixture
def board(tmp_path: Path) -> Roots:
    return fake_board(tmp_path / "board", cpus=4, cpufreq=True)


@pytest.fixture
def vm_board(tmp_path: Path) -> Roots:
    return fake_board(tmp_path / "vm", cpus=2, cpufreq=False)


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "profiles"
    d.mkdir()
    return d


MakeTuner = Callable[..., Tuner]


@pytest.fixture
def make_tuner(tmp_path: Path, user_dir: Path) -> MakeTuner:
    def make(roots: Roots, **kw: object) -> Tuner:
        kw.setdefault("tuned", NoTuned())
        return Tuner(state_dir=tmp_path / "state", store=ProfileStore([user_dir]), roots=roots, **kw)  # type: ignore[arg-type]

    return make
