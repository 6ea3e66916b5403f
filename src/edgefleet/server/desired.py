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
A document with less than half of its lifetime left is signed again, same content, revision + 1,
when its device asks for it (:func:`renew_desired`): devices refuse expired documents, and a fleet
may well run unchanged for longer than the lifetime.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from edgefleet.server.keys import ServerKey
from edgefleet.server.store.models import Bundle, Deployment, Device, DeviceAssignment, Release

__all__ = ["etag", "expiring", "refresh_desired", "renew_desired"]

_EXPIRES = re.compile(r'"expires_at":"([^"]+)"')


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
            _sign(dev, key, content, now, ttl_seconds)
            changed.append(dev.id)
    return changed


def expiring(doc: str, now: datetime, ttl_seconds: float) -> bool:
    """True when a stored document has less than half of its lifetime left (or has expired)."""
    found = _EXPIRES.search(doc)
    if found is None:
        return False
    expires = datetime.strptime(found.group(1), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return expires - now < timedelta(seconds=ttl_seconds / 2)


def renew_desired(s: Session, key: ServerKey, device_id: str, now: datetime, ttl_seconds: float) -> bool:
    """Sign a device's expiring document again: same content, new expiry, revision + 1."""
    dev = s.execute(select(Device).where(Device.id == device_id).with_for_update()).scalar_one_or_none()
    if dev is None or not dev.desired_doc or not expiring(dev.desired_doc, now, ttl_seconds):
        return False
    _sign(dev, key, _content(dev.desired_doc), now, ttl_seconds)
    return True


def _sign(dev: Device, key: ServerKey, content: dict[str, Any], now: datetime, ttl_seconds: float) -> None:
    dev.desired_revision += 1
    wl = content["workloads"]
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
