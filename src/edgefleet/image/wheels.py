"""The runtime layer: edgefleet and the wheels ``edgefleet serve`` imports, for the target platform.

The package set is the closure of what the serving process imports (edgefleet's core dependencies
plus ONNX Runtime, numpy, starlette, uvicorn, grpcio, protobuf, httptools), walked through the
installed distributions' metadata with markers evaluated for the target; the versions are the ones
installed here, so an image serves with exactly what was tested. Client and tooling packages
(tritonclient, onnx, fastapi, sympy, coloredlogs) are left out. Wheels for the target's manylinux
tags are fetched with ``pip download --only-binary=:all: --platform ...`` into
``<cache>/wheels/<arch>/`` and unpacked (a wheel is a zip) into ``/opt/edgefleet/lib``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from edgefleet.image.errors import ImageBuildError, ImageNotFoundError

__all__ = [
    "EXCLUDED",
    "SERVE_ROOTS",
    "SITE_PACKAGES",
    "Requirement",
    "fetch_wheels",
    "platform_tags",
    "resolve",
    "stage_edgefleet",
    "unpack_wheel",
]

Runner = Callable[..., subprocess.CompletedProcess[str]]

SITE_PACKAGES = "opt/edgefleet/lib"

SERVE_ROOTS: tuple[str, ...] = (
    "numpy",
    "onnxruntime",
    "starlette",
    "uvicorn",
    "grpcio",
    "protobuf",
    "httptools",
)
# Required by the metadata of packages above but never imported by `edgefleet serve`.
EXCLUDED: frozenset[str] = frozenset(
    {"sympy", "mpmath", "coloredlogs", "humanfriendly", "onnx", "tritonclient"}
)

_MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
# Debian 12 has glibc 2.36: every manylinux tag up to it fits.
_GLIBC_MINOR = 36


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True, order=True)
class Requirement:
    """One distribution at a pinned version."""

    name: str
    version: str


def _core_requirements() -> list[str]:
    try:
        requires = md.requires("edgefleet") or []
    except md.PackageNotFoundError as exc:
        raise ImageNotFoundError("edgefleet is not installed as a distribution (pip install -e .)") from exc
    return [r for r in requires if "extra ==" not in r]


def resolve(
    arch: str, roots: Iterable[str] = SERVE_ROOTS, exclude: frozenset[str] = EXCLUDED
) -> list[Requirement]:
    """The pinned closure of ``roots`` and edgefleet's core dependencies for a Linux ``arch``."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement as PkgRequirement

    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    env.update(
        platform_machine=_MACHINES[arch],
        sys_platform="linux",
        platform_system="Linux",
        os_name="posix",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        python_version="3.11",
        python_full_version="3.11.2",
    )
    todo = [PkgRequirement(r) for r in _core_requirements()] + [PkgRequirement(r) for r in roots]
    seen: dict[str, Requirement] = {}
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen or name in exclude:
            continue
        if req.marker is not None and not req.marker.evaluate({**env, "extra": ""}):
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError as exc:
            raise ImageNotFoundError(
                f"{req.name} is needed in the image but not installed here "
                "(pip install 'edgefleet[serving]')",
                package=req.name,
            ) from exc
        seen[name] = Requirement(name, dist.version)
        for text in dist.requires or []:
            sub = PkgRequirement(text)
            # a requirement behind an extra ("extra == 'x'") counts only when that extra was asked for
            marker_ok = sub.marker is None or any(
                sub.marker.evaluate({**env, "extra": extra}) for extra in ("", *sorted(req.extras))
            )
            if marker_ok:
                todo.append(sub)
    return sorted(seen.values())


def platform_tags(arch: str) -> list[str]:
    """``--platform`` values for pip: manylinux tags a Debian 12 ``arch`` can run."""
    machine = _MACHINES[arch]
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(_GLIBC_MINOR, 16, -1)]
    return [*tags, f"manylinux2014_{machine}", f"linux_{machine}"]


def _find_wheel(wheels: Path, req: Requirement, arch: str) -> Path | None:
    machine = _MACHINES[arch]
    prefix = re.sub(r"[-.]+", "_", req.name).lower() + "-" + req.version + "-"
    for path in sorted(wheels.glob("*.whl")):
        name = path.name.lower()
        if name.startswith(prefix) and (name.endswith("-any.whl") or machine in name):
            return path
    return None


def fetch_wheels(
    reqs: Iterable[Requirement],
    arch: str,
    cache: Path,
    *,
    python: str = sys.executable,
    runner: Runner = subprocess.run,
) -> list[Path]:
    """The wheel of each requirement for ``arch``, from ``<cache>/wheels/<arch>`` or downloaded into it."""
    reqs = list(reqs)
    wheels = cache / "wheels" / arch
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [r for r in reqs if _find_wheel(wheels, r, arch) is None]
    if missing:
        argv = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps"]
        argv += [
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ]
        for tag in platform_tags(arch):
            argv += ["--platform", tag]
        argv += ["--dest", str(wheels), *(f"{r.name}=={r.version}" for r in missing)]
        done = runner(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImageBuildError(
                f"pip download for {arch} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}",
                arch=arch,
            )
    found = []
    for r in reqs:
        wheel = _find_wheel(wheels, r, arch)
        if wheel is None:
            raise ImageNotFoundError(f"no {arch} wheel of {r.name} {r.version}", package=r.name, arch=arch)
        found.append(wheel)
    return found


# Inside unpacked wheels: test suites and headers a server does not need, and the model tooling
# (quantization, fp16 conversion, Fortran wrappers) that `edgefleet optimize` uses, not the server.
_PRUNE_DIRS = frozenset({"tests", "testing", "__pycache__", "include"})
_PRUNE_PREFIXES: tuple[str, ...] = (
    "onnxruntime/transformers/",
    "onnxruntime/quantization/",
    "onnxruntime/tools/",
    "onnxruntime/datasets/",
    "numpy/f2py/",
    "numpy/distutils/",
    "numpy/_pyinstaller/",
)


def unpack_wheel(wheel: Path, site: Path) -> None:
    """Unpack ``wheel`` into ``site`` (purelib/platlib data dirs merged; scripts and headers dropped)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir():
                continue
            parts = info.filename.split("/")
            if ".." in parts or parts[0] == "":
                raise ImageBuildError(f"{wheel.name}: unsafe path {info.filename!r}", wheel=wheel.name)
            if parts[0].endswith(".data"):
                if len(parts) < 3 or parts[1] not in {"purelib", "platlib"}:
                    continue
                parts = parts[2:]
            if any(p in _PRUNE_DIRS for p in parts[:-1]) and not parts[0].endswith(".dist-info"):
                continue
            if parts[-1] == "RECORD" and parts[0].endswith(".dist-info"):
                continue
            if "/".join(parts).startswith(_PRUNE_PREFIXES):
                continue
            target = site.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            if (info.external_attr >> 16) & 0o111:
                target.chmod(0o755)


def stage_edgefleet(site: Path, package_dir: Path | None = None) -> str:
    """Copy the edgefleet package (sources only) into ``site``; return a digest of what was copied."""
    import edgefleet

    src = package_dir or Path(edgefleet.__file__).parent
    sha = hashlib.sha256()
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if "__pycache__" in rel.parts or path.is_dir() or path.suffix in {".pyc", ".pyo"}:
            continue
        target = site / "edgefleet" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = path.read_bytes()
        target.write_bytes(data)
        sha.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    return sha.hexdigest()


def wheels_key(wheels: Iterable[Path]) -> str:
    """A digest of the wheel files."""
    sha = hashlib.sha256()
    for wheel in sorted(wheels, key=lambda p: p.name):
        sha.update(
            wheel.name.encode() + b"\0" + hashlib.sha256(wheel.read_bytes()).hexdigest().encode() + b"\n"
        )
    return sha.hexdigest()
