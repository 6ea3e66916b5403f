"""The base layer: Python 3.11 and the C/C++ libraries ONNX Runtime needs, from Debian's packages.

The ``.deb`` files are fetched with ``apt-get download`` against a private apt state per
architecture (``-o APT::Architecture=arm64``: the host's own apt configuration and package lists are
not touched), cached under ``<cache>/debs/<arch>/`` so rebuilds are offline, unpacked with
``dpkg-deb -x`` (no maintainer scripts run) and pruned: documentation, man pages, locales, the
test suites and tools a server never imports. The standard library is byte-compiled with
``--invalidation-mode unchecked-hash`` (no timestamps, nothing written at run time).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from edgefleet.image.errors import ImageBuildError, ImageNotFoundError

__all__ = [
    "DEBIAN_PACKAGES",
    "RUNTIME_GID",
    "RUNTIME_UID",
    "RUNTIME_USER",
    "compile_tree",
    "fetch_debs",
    "stage_base",
]

Runner = Callable[..., subprocess.CompletedProcess[str]]

# What `python3.11 -m edgefleet serve` loads: the interpreter, its standard library and the shared
# libraries of the extension modules it imports (ssl, ctypes, lzma, bz2, sqlite3 is left out), plus
# libstdc++/libgcc for ONNX Runtime and grpcio. No shell, no package manager.
DEBIAN_PACKAGES: tuple[str, ...] = (
    "libc6",
    "libgcc-s1",
    "libstdc++6",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libssl3",
    "libbz2-1.0",
    "liblzma5",
    "libcrypt1",
    "libuuid1",
    "media-types",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "python3.11-minimal",
)

RUNTIME_UID = 65532
RUNTIME_GID = 65532
RUNTIME_USER = "nonroot"

# Removed after unpacking (relative to the root; directories go with everything under them).
_PRUNE: tuple[str, ...] = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/bug",
    "usr/share/binfmts",
    "usr/share/gdb",
    "usr/share/applications",
    "usr/share/pixmaps",
    "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/pydoc_data",
    "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/turtledemo",
    "usr/lib/python3.11/unittest/test",
    "usr/lib/python3.11/test",
    "usr/lib/python3.11/distutils/tests",
    "usr/lib/python3.11/config-3.11-x86_64-linux-gnu",
    "usr/lib/python3.11/config-3.11-aarch64-linux-gnu",
    "usr/lib/x86_64-linux-gnu/gconv",  # iconv modules: Python's codecs do not use them
    "usr/lib/aarch64-linux-gnu/gconv",
    "etc/init.d",
    "etc/ld.so.conf.d",
    "usr/sbin",
    "sbin",
    "var",
)

_ARCH_DIRS = {"amd64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def _apt_options(arch: str, state: Path) -> list[str]:
    return [
        "-q",
        "-o",
        f"APT::Architecture={arch}",
        "-o",
        f"APT::Architectures::={arch}",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Dir::State::status=/dev/null",
        "-o",
        "Debug::NoLocking=1",
    ]


def _deb_for(debs: Path, package: str, arch: str) -> Path | None:
    found = sorted(p for p in debs.glob(f"{package}_*.deb") if p.name.endswith((f"_{arch}.deb", "_all.deb")))
    return found[-1] if found else None


def fetch_debs(
    arch: str,
    cache: Path,
    packages: Sequence[str] = DEBIAN_PACKAGES,
    *,
    runner: Runner = subprocess.run,
) -> list[Path]:
    """The ``.deb`` of each package for ``arch``, from ``<cache>/debs/<arch>`` or downloaded into it."""
    debs = cache / "debs" / arch
    have = {p: _deb_for(debs, p, arch) for p in packages}
    missing = [p for p, deb in have.items() if deb is None]
    if missing:
        if shutil.which("apt-get") is None:
            raise ImageNotFoundError(
                f"Debian packages {', '.join(missing)} are not cached in {debs} and apt-get is not "
                "installed: give a base image with --base ARCHIVE",
                packages=missing,
            )
        state = cache / "apt" / arch
        for sub in ("lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        debs.mkdir(parents=True, exist_ok=True)
        opts = _apt_options(arch, state)
        for step, argv in (
            ("update", ["apt-get", *opts, "update"]),
            ("download", ["apt-get", *opts, "download", *missing]),
        ):
            done = runner(argv, cwd=debs, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise ImageBuildError(
                    f"apt-get {step} for {arch} failed (exit {done.returncode}): "
                    f"{done.stderr.strip()[-800:]}",
                    arch=arch,
                )
        have = {p: _deb_for(debs, p, arch) for p in packages}
        still = [p for p, deb in have.items() if deb is None]
        if still:
            raise ImageNotFoundError(
                f"apt-get did not download {', '.join(still)} for {arch}", packages=still
            )
    return [deb for deb in have.values() if deb is not None]


def debs_key(debs: Sequence[Path]) -> str:
    """A digest of the package files: the cache key part that says which packages went in."""
    sha = hashlib.sha256()
    for deb in sorted(debs, key=lambda p: p.name):
        sha.update(deb.name.encode() + b"\0" + hashlib.sha256(deb.read_bytes()).hexdigest().encode() + b"\n")
    return sha.hexdigest()


def compile_tree(
    root: Path, under: str, *, python: str = sys.executable, runner: Runner = subprocess.run
) -> None:
    """Byte-compile ``root/under`` as ``/under`` with unchecked-hash pycs (no timestamps).

    Byte code is specific to the minor version: when the building interpreter is not a 3.11 (the
    image's), nothing is compiled and the image imports from source (slower start, same behaviour).
    """
    if python == sys.executable and sys.version_info[:2] != (3, 11):
        return
    done = runner(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "1",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(root),
            "-p",
            "/",
            str(root / under),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    # compileall exits 1 when a file does not compile (Python 2 leftovers in some packages): those
    # stay source-only, which is harmless; anything else is a failure.
    if done.returncode not in {0, 1}:
        raise ImageBuildError(f"compileall {under} failed: {done.stderr.strip()[-800:]}")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def stage_base(
    debs: Sequence[Path],
    staging: Path,
    arch: str,
    *,
    runner: Runner = subprocess.run,
    python: str = sys.executable,
) -> None:
    """Unpack ``debs`` into ``staging``, prune it and add the runtime user, ``/tmp`` and ``python3``."""
    for deb in sorted(debs, key=lambda p: p.name):
        done = runner(["dpkg-deb", "-x", str(deb), str(staging)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ImageBuildError(
                f"dpkg-deb -x {deb.name} failed: {done.stderr.strip()[-800:]}", deb=str(deb)
            )
    for rel in _PRUNE:
        target = staging / rel
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for cache in staging.rglob("__pycache__"):
        shutil.rmtree(cache)
    libdir = _ARCH_DIRS[arch]
    # Static archives and pkg-config files are build-time only.
    for pattern in ("*.a", "*.pc"):
        for path in staging.rglob(pattern):
            path.unlink()
    python3 = staging / "usr/bin/python3"
    if not python3.exists():
        python3.symlink_to("python3.11")
    _write(
        staging / "etc/passwd",
        f"root:x:0:0:root:/root:/sbin/nologin\n"
        f"{RUNTIME_USER}:x:{RUNTIME_UID}:{RUNTIME_GID}:{RUNTIME_USER}:/tmp:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n",
    )
    _write(staging / "etc/group", f"root:x:0:\n{RUNTIME_USER}:x:{RUNTIME_GID}:\nnogroup:x:65534:\n")
    _write(staging / "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    _write(staging / "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    (staging / "tmp").mkdir(exist_ok=True)
    (staging / "root").mkdir(exist_ok=True)
    (staging / "usr/lib" / libdir).mkdir(parents=True, exist_ok=True)
    compile_tree(staging, "usr/lib/python3.11", python=python, runner=runner)
