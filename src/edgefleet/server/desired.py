"""The per-device desired-state document, built from assignments and signed by the server key.

The document (the ``signed`` part of the envelope, see :mod:`edgefleet.server.keys`)::

    {"type": "edgefleet-desired-state", "version": 1, "device": "<id>", "project": "<id>",
     "revision": 7, "issued_at": "...Z", "expires_at": "...Z", "labels": {...},
     "workloads": [{"deployment": "<name>", "deployment_id": "...", "release": "<id>", "release_number": 2,
                    "bundle": {"name", "version", "sha256", "size", "url", "manifest", "targets"},
                    "resources": {...}, "serving": {...}, "pipeline": {...}, "tuning_profile": "...",
                    "maintenance": {"windows": ["Mon-Fri 02:00-04:00"], "timezone": "UTC"} | null}],
     "tuning_profile": "<first workload's profile or null>"}

``revision`` grows by one each time the workloads (or labels) change; the ETag is the revision.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.server.keys import ServerKey
from edgefleet.server.store.models import Bundle, Deployment, Device, DeviceAssignment, Release

__all__ = ["etag", "refresh_desired"]


def etag(device: str, revision: int) -> str:
    return f'"{device}.{revision}"'


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def refresh_desired(
    s: Session, key: ServerKey, device_ids: Iterable[str], now: datetime, ttl_seconds: float
) -> list[str]:
    """Rebuild and re-sign the documents of ``device_ids`` whose content changed; returns those ids."""
    ids = sorted(set(device_ids))
    if not ids:
        return []
    changed: list[str] = []
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        rows = s.execute(
            select(DeviceAssignment.device_id, Deployment, Release, Bundle)
            .join(Deployment, Deployment.id == DeviceAssignment.deployment_id)
            .join(Release, Release.id == DeviceAssignment.release_id)
            .join(Bundle, Bundle.id == Release.bundle_id)
            .where(DeviceAssignment.device_id.in_(chunk))
        ).all()
        workloads: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for device_id, dep, rel, bundle in rows:
            workloads[device_id].append(_workload(dep, rel, bundle))
        devices = s.execute(select(Device).where(Device.id.in_(chunk))).scalars().all()
        for dev in devices:
            wl = sorted(workloads.get(dev.id, []), key=lambda w: str(w["deployment"]))
            content = {"labels": dev.labels, "workloads": wl}
            if dev.desired_doc and _content(dev.desired_doc) == content:
                continue
            dev.desired_revision += 1
            signed = {
                "type": "edgefleet-desired-state",
                "version": 1,
                "device": dev.id,
                "project": dev.project_id,
                "revision": dev.desired_revision,
                "issued_at": _iso(now),
                "expires_at": _iso(now + timedelta(seconds=ttl_seconds)),
                **content,
                "tuning_profile": next((w["tuning_profile"] for w in wl if w.get("tuning_profile")), None),
            }
            dev.desired_doc = json.dumps(key.sign_document(signed), separators=(",", ":"), sort_keys=True)
            changed.append(dev.id)
    return changed


def _content(doc: str) -> dict[str, Any]:
    signed = json.loads(doc)["signed"]
    return {"labels": signed["labels"], "workloads": signed["workloads"]}


def _workload(dep: Deployment, rel: Release, bundle: Bundle) -> dict[str, Any]:
    spec = rel.spec
    return {
        "deployment": dep.name,
        "deployment_id": dep.id,
        "release": rel.id,
        "release_number": rel.number,
        "bundle": {
            "name": bundle.name,
            "version": bundle.version,
            "sha256": bundle.blob_sha256,
            "size": bundle.size,
            "url": f"/device/v1/blobs/{bundle.blob_sha256}",
            "manifest": bundle.manifest,
            "targets": bundle.targets,
        },
        "resources": spec.get("resources", {}),
        "serving": spec.get("serving", {}),
        "pipeline": spec.get("pipeline", {}),
        "tuning_profile": spec.get("tuning_profile"),
        "maintenance": spec.get("maintenance"),
    }
