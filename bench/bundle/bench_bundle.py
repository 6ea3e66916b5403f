"""Bundle throughput on this machine, side by side with plain baselines in one run.

    .venv/bin/python bench/bundle/bench_bundle.py [--size-mib 256] [--repeat 3]

Measures, for a bundle of one random file of --size-mib MiB:
  sha256 of the tar (hashlib, the floor) · build · verify (read_bundle) · install (store, fsync)
  · tarfile.extractall(filter="data") without checks or fsync · TUF fetch over local HTTP
and prints MiB/s and the ratio to the sha256 floor.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import os
import platform
import shutil
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import tuf

from edgefleet.bundle.build import BuildOptions, build_bundle
from edgefleet.bundle.client import BundleClient
from edgefleet.bundle.keys import ONLINE_ROLES, KeyPolicy, KeyStore
from edgefleet.bundle.repository import Repository
from edgefleet.bundle.store import BundleStore
from edgefleet.bundle.unpack import read_bundle


def _best(fn: Callable[[int], None], repeat: int) -> float:
    times = []
    for i in range(repeat):
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return min(times)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        del format, args


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgefleet-bench-bundle-"))
    try:
        src = work / "src"
        src.mkdir()
        with (src / "weights.tflite").open("wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(1 << 20))
        opts = BuildOptions(name="bench", version="1.0.0", created=datetime(2026, 1, 1, tzinfo=UTC))
        tar = work / "bench.tar"

        def build(_i: int) -> None:
            build_bundle(src, tar, opts, overwrite=True)

        def sha(_i: int) -> None:
            h = hashlib.sha256()
            with tar.open("rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)

        def verify(_i: int) -> None:
            read_bundle(tar)

        def install(i: int) -> None:
            store = BundleStore(work / f"store{i}")
            store.install(tar)

        def extract(i: int) -> None:
            with tarfile.open(tar) as t:
                t.extractall(work / f"plain{i}", filter="data")

        keys = KeyStore(work / "keys")
        keys.init(KeyPolicy(), None)
        repo = Repository.create(work / "repo", keys.root_versions())
        build(0)
        repo.add_bundle(tar, keys.signers("targets", None))
        repo.refresh({r: keys.signers(r, None) for r in ONLINE_ROLES})
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(work / "repo"))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()

        def fetch(i: int) -> None:
            client = BundleClient(
                work / f"dev{i}",
                f"http://127.0.0.1:{server.server_port}",
                BundleStore(work / f"dev{i}" / "store"),
                trusted_root=keys.root_versions()[0],
            )
            client.fetch("bench", "1.0.0")

        results = {}
        for name, fn in [
            ("sha256 (floor)", sha),
            ("build", build),
            ("verify", verify),
            ("install", install),
            ("tarfile.extractall", extract),
            ("TUF fetch+install", fetch),
        ]:
            results[name] = _best(fn, args.repeat)
        server.shutdown()
        size = tar.stat().st_size / (1 << 20)
        print(
            f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"tuf {tuf.__version__}, bundle {size:.0f} MiB, best of {args.repeat}"
        )
        print("| step | seconds | MiB/s | time / sha256 time |")
        print("|---|---|---|---|")
        floor = results["sha256 (floor)"]
        for name, secs in results.items():
            print(f"| {name} | {secs:.3f} | {size / secs:.0f} | {secs / floor:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
