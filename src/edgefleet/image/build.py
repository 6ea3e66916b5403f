"""``build_image``: a bundle → an OCI image layout archive, one image per platform, no daemon.

Layers, bottom to top: the Debian base (or the layers of a ``--base`` OCI archive), the runtime
(edgefleet and its wheels) and the bundle. Base and runtime layers do not depend on the bundle, so
images of different bundles share them; they are cached under ``<cache>/layers/`` by a key of
their inputs, so a rebuild only writes the bundle layer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefleet.image.base import RUNTIME_GID, RUNTIME_UID, compile_tree, debs_key, fetch_debs, stage_base
from edgefleet.image.errors import ImageInputError, ImageNotFoundError
from edgefleet.image.oci import (
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    Blob,
    Layer,
    canonical_json,
    write_layer,
    write_layout,
)
from edgefleet.image.wheels import (
    SITE_PACKAGES,
    fetch_wheels,
    resolve,
    stage_edgefleet,
    unpack_wheel,
    wheels_key,
)

__all__ = [
    "GRPC_PORT",
    "HTTP_PORT",
    "LABEL_PREFIX",
    "BuildResult",
    "ImageInfo",
    "build_image",
    "parse_platforms",
]

Runner = Callable[..., subprocess.CompletedProcess[str]]

HTTP_PORT = 8000
GRPC_PORT = 8001
LABEL_PREFIX = "io.edgefleet"
_LAYER_FORMAT = "2"  # bump when the staging of a cached layer changes
_PLATFORMS = {"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm64/v8": "arm64"}


def parse_platforms(text: str) -> list[str]:
    """``linux/amd64,linux/arm64`` → ``["amd64", "arm64"]`` (order kept, duplicates refused)."""
    archs: list[str] = []
    for item in (p.strip() for p in text.split(",")):
        if item not in _PLATFORMS:
            raise ImageInputError(
                f"--platform: {item!r} is not supported; allowed {', '.join(sorted(_PLATFORMS))}",
                field="platform",
                value=item,
            )
        if _PLATFORMS[item] in archs:
            raise ImageInputError(f"--platform: {item!r} is given twice", field="platform", value=item)
        archs.append(_PLATFORMS[item])
    return archs


@dataclass(frozen=True)
class ImageInfo:
    """One platform's image in the archive."""

    arch: str
    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]

    @property
    def image_id(self) -> str:
        """What podman calls the image once loaded: the config digest's hex."""
        return self.config.digest.removeprefix("sha256:")


@dataclass(frozen=True)
class BuildResult:
    """What ``build_image`` wrote."""

    path: Path
    bundle_name: str
    bundle_version: str
    bundle_sha256: str
    index_digest: str
    images: tuple[ImageInfo, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """For ``--json`` and the docs."""
        return {
            "path": str(self.path),
            "bundle": {
                "name": self.bundle_name,
                "version": self.bundle_version,
                "sha256": self.bundle_sha256,
            },
            "index_digest": self.index_digest,
            "size": self.path.stat().st_size,
            "images": [
                {
                    "architecture": i.arch,
                    "manifest": i.manifest.digest,
                    "config": i.config.digest,
                    "image_id": i.image_id,
                    "layers": [
                        {
                            "comment": la.comment,
                            "digest": la.blob.digest,
                            "size": la.blob.size,
                            "uncompressed_size": la.uncompressed_size,
                        }
                        for la in i.layers
                    ],
                    "compressed_size": sum(la.blob.size for la in i.layers),
                    "uncompressed_size": sum(la.uncompressed_size for la in i.layers),
                }
                for i in self.images
            ],
        }


def _epoch(source_date_epoch: int | None) -> int:
    if source_date_epoch is not None:
        return source_date_epoch
    text = os.environ.get("SOURCE_DATE_EPOCH", "0")
    if not text.isdigit():
        raise ImageInputError(
            f"SOURCE_DATE_EPOCH: {text!r} is not a number of seconds", field="SOURCE_DATE_EPOCH"
        )
    return int(text)


def _cached_layer(cache: Path, key: str, make: Callable[[Path], Layer]) -> Layer:
    """The layer for ``key`` from ``<cache>/layers``, made (in a fresh staging dir) when missing."""
    layers = cache / "layers"
    meta, blob = layers / f"{key}.json", layers / f"{key}.tar.gz"
    if meta.exists() and blob.exists():
        return Layer.from_json(blob, json.loads(meta.read_text()))
    layers.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgefleet-image-", dir=layers) as tmp:
        staging = Path(tmp) / "root"
        staging.mkdir()
        layer = make(staging)
        layer.path.replace(blob)
    meta_tmp = meta.with_name(meta.name + ".part")
    meta_tmp.write_text(json.dumps(layer.to_json(), indent=2))
    meta_tmp.replace(meta)
    return Layer.from_json(blob, layer.to_json())


def _base_layer(arch: str, cache: Path, epoch: int, runner: Runner, python: str) -> Layer:
    debs = fetch_debs(arch, cache, runner=runner)
    key = f"base-{arch}-{_LAYER_FORMAT}-{epoch}-{debs_key(debs)[:32]}"

    def make(staging: Path) -> Layer:
        stage_base(debs, staging, arch, runner=runner, python=python)
        return write_layer(
            staging,
            staging.parent / "layer.tar.gz",
            epoch=epoch,
            comment="debian base: " + " ".join(sorted(d.name.split("_")[0] for d in debs)),
            modes={"tmp": 0o1777, "root": 0o700},
        )

    return _cached_layer(cache, key, make)


def _runtime_layer(arch: str, cache: Path, epoch: int, runner: Runner, python: str) -> Layer:
    reqs = resolve(arch)
    wheels = fetch_wheels(reqs, arch, cache, python=python, runner=runner)
    with tempfile.TemporaryDirectory(prefix="edgefleet-src-") as tmp:
        src_key = stage_edgefleet(Path(tmp))
    key = f"runtime-{arch}-{_LAYER_FORMAT}-{epoch}-{wheels_key(wheels)[:24]}-{src_key[:24]}"

    def make(staging: Path) -> Layer:
        site = staging / SITE_PACKAGES
        site.mkdir(parents=True)
        for wheel in wheels:
            unpack_wheel(wheel, site)
        stage_edgefleet(site)
        compile_tree(staging, SITE_PACKAGES, python=python, runner=runner)
        return write_layer(
            staging,
            staging.parent / "layer.tar.gz",
            epoch=epoch,
            comment="edgefleet runtime: " + " ".join(f"{r.name}=={r.version}" for r in reqs),
        )

    return _cached_layer(cache, key, make)


def _bundle_layer(bundle: Path, work: Path, epoch: int) -> tuple[Layer, Any]:
    from edgefleet.bundle.unpack import read_bundle

    staging = work / "bundle-root"
    probe = read_bundle(bundle)  # verify first: the name is needed for the directory
    dest = staging / "bundle" / probe.manifest.name
    dest.mkdir(parents=True)
    verified = read_bundle(bundle, dest=dest, expected_sha256=probe.sha256)
    layer = write_layer(
        staging,
        work / "bundle.tar.gz",
        epoch=epoch,
        comment=f"bundle {verified.manifest.name} {verified.manifest.version} sha256:{verified.sha256}",
    )
    return layer, verified


def _base_archive_layers(archive: Path, arch: str, work: Path) -> tuple[list[Layer], dict[str, Any]]:
    """The layers and config of ``arch``'s image in an OCI layout archive given with ``--base``."""
    if not archive.is_file():
        raise ImageNotFoundError(f"--base: {archive} is not a file", field="base")
    out = work / f"base-{arch}"
    out.mkdir()
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(out, filter="data")
        index = json.loads((out / "index.json").read_text())
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ImageInputError(
            f"--base: {archive} is not an OCI image layout archive ({exc})", field="base"
        ) from exc

    def blob(digest: str) -> Path:
        return out / "blobs" / "sha256" / digest.removeprefix("sha256:")

    manifests = list(index.get("manifests", []))
    while manifests:
        desc = manifests.pop(0)
        doc = json.loads(blob(desc["digest"]).read_text())
        if desc.get("mediaType") == MEDIA_INDEX or "manifests" in doc:
            manifests.extend(doc["manifests"])
            continue
        config = json.loads(blob(doc["config"]["digest"]).read_text())
        if config.get("architecture") != arch:
            continue
        layers = []
        for la, diff_id in zip(doc["layers"], config["rootfs"]["diff_ids"], strict=True):
            if la["mediaType"] not in {MEDIA_LAYER, "application/vnd.docker.image.rootfs.diff.tar.gzip"}:
                raise ImageInputError(f"--base: layer media type {la['mediaType']} is not gzip", field="base")
            path = blob(la["digest"])
            layers.append(Layer(path, Blob(la["digest"], la["size"], MEDIA_LAYER), diff_id, 0, "base image"))
        return layers, config
    raise ImageNotFoundError(f"--base: {archive} has no linux/{arch} image", field="base", arch=arch)


def _config(
    arch: str,
    layers: Sequence[Layer],
    manifest: Any,
    *,
    bundle_sha256: str,
    epoch: int,
    base_env: Sequence[str],
) -> dict[str, Any]:
    model = f"/bundle/{manifest.name}/{manifest.model.path}"
    created = "1970-01-01T00:00:00Z" if epoch == 0 else _iso(epoch)
    health = [
        "/usr/bin/python3.11",
        "-m",
        "edgefleet.image.health",
        f"http://127.0.0.1:{HTTP_PORT}/v2/health/ready",
    ]
    labels = {
        f"{LABEL_PREFIX}.bundle.name": manifest.name,
        f"{LABEL_PREFIX}.bundle.version": manifest.version,
        f"{LABEL_PREFIX}.bundle.sha256": bundle_sha256,
        f"{LABEL_PREFIX}.healthcheck": json.dumps(health),
        "org.opencontainers.image.title": manifest.name,
        "org.opencontainers.image.version": manifest.version,
        "org.opencontainers.image.description": f"edgefleet serve: bundle {manifest.name} {manifest.version}",
    }
    env = [e for e in base_env if not e.startswith(("PATH=", "PYTHON"))]
    env += [
        "PATH=/usr/local/bin:/usr/bin:/bin",
        f"PYTHONPATH=/{SITE_PACKAGES}",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "HOME=/tmp",
        "EDGEFLEET_DATA_DIR=/tmp/edgefleet",
    ]
    return {
        "created": created,
        "architecture": arch,
        "os": "linux",
        **({"variant": "v8"} if arch == "arm64" else {}),
        "config": {
            "User": f"{RUNTIME_UID}:{RUNTIME_GID}",
            "Env": env,
            "Entrypoint": ["/usr/bin/python3.11", "-m", "edgefleet"],
            "Cmd": ["serve", model, "--model-name", manifest.name, "--host", "0.0.0.0"],  # noqa: S104 - the container's own interface
            "WorkingDir": "/tmp",  # noqa: S108 - the container's tmpfs
            "ExposedPorts": {f"{HTTP_PORT}/tcp": {}, f"{GRPC_PORT}/tcp": {}},
            "Labels": labels,
            "StopSignal": "SIGTERM",
            # A Docker extension: podman honours it when the image is used in docker format;
            # the same command is in the io.edgefleet.healthcheck label for Quadlet's HealthCmd=.
            "Healthcheck": {
                "Test": ["CMD", *health],
                "Interval": 10_000_000_000,
                "Timeout": 3_000_000_000,
                "StartPeriod": 5_000_000_000,
                "Retries": 3,
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [la.diff_id for la in layers]},
        "history": [
            {"created": created, "created_by": "edgefleet image build", "comment": la.comment}
            for la in layers
        ],
    }


def _iso(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_image(
    bundle: Path,
    output: Path,
    *,
    platforms: Sequence[str] = ("amd64",),
    base: Path | None = None,
    cache_dir: Path,
    source_date_epoch: int | None = None,
    ref_name: str | None = None,
    runner: Runner = subprocess.run,
    python: str = sys.executable,
) -> BuildResult:
    """Build ``bundle`` into an OCI layout archive at ``output`` with one image per platform."""
    if not platforms:
        raise ImageInputError("--platform: give at least one platform", field="platform")
    if not bundle.is_file():
        raise ImageNotFoundError(f"{bundle}: no such bundle", path=str(bundle))
    epoch = _epoch(source_date_epoch)
    with tempfile.TemporaryDirectory(prefix="edgefleet-image-") as tmp:
        work = Path(tmp)
        bundle_layer, verified = _bundle_layer(bundle, work, epoch)
        manifest = verified.manifest
        ref = ref_name or f"{manifest.name}:{manifest.version.replace('+', '_')}"
        json_blobs: dict[str, bytes] = {}
        all_layers: list[Layer] = []
        images: list[ImageInfo] = []
        for arch in platforms:
            base_env: list[str] = []
            if base is not None:
                lower, base_config = _base_archive_layers(base, arch, work)
                base_env = list(base_config.get("config", {}).get("Env") or [])
            else:
                lower = [_base_layer(arch, cache_dir, epoch, runner, python)]
            layers = [*lower, _runtime_layer(arch, cache_dir, epoch, runner, python), bundle_layer]
            config_bytes = canonical_json(
                _config(arch, layers, manifest, bundle_sha256=verified.sha256, epoch=epoch, base_env=base_env)
            )
            config = Blob.of(config_bytes, MEDIA_CONFIG)
            image_manifest = {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": config.descriptor(),
                "layers": [la.blob.descriptor() for la in layers],
                "annotations": {"org.opencontainers.image.created": _iso(epoch)},
            }
            manifest_bytes = canonical_json(image_manifest)
            manifest_blob = Blob.of(manifest_bytes, MEDIA_MANIFEST)
            json_blobs[config.digest] = config_bytes
            json_blobs[manifest_blob.digest] = manifest_bytes
            all_layers += layers
            images.append(ImageInfo(arch, manifest_blob, config, tuple(layers)))
        platform_descs = [
            i.manifest.descriptor(
                platform={
                    "architecture": i.arch,
                    "os": "linux",
                    **({"variant": "v8"} if i.arch == "arm64" else {}),
                }
            )
            for i in images
        ]
        annotations = {"org.opencontainers.image.ref.name": ref}
        if len(images) == 1:
            top = {**platform_descs[0], "annotations": annotations}
        else:
            nested = canonical_json(
                {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": platform_descs}
            )
            nested_blob = Blob.of(nested, MEDIA_INDEX)
            json_blobs[nested_blob.digest] = nested
            top = nested_blob.descriptor(annotations=annotations)
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [top]}
        write_layout(output, index=index, json_blobs=json_blobs, layers=all_layers, epoch=epoch)
    return BuildResult(
        path=output,
        bundle_name=manifest.name,
        bundle_version=manifest.version,
        bundle_sha256=verified.sha256,
        index_digest=str(top["digest"]),
        images=tuple(images),
    )


def default_cache_dir(data_dir: Path) -> Path:
    """``<data dir>/cache/image``: debs, wheels and finished layers."""
    return data_dir / "cache" / "image"


def clear_layer_cache(cache_dir: Path) -> None:
    """Forget the finished layers (the debs and wheels stay)."""
    shutil.rmtree(cache_dir / "layers", ignore_errors=True)
