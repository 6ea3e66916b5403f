"""Loaded models: load, unload and hot reload with zero failed requests.

Each request takes a lease on one :class:`LoadedModel`. A reload builds the new sessions first,
then swaps the table under a lock; the old version is retired and closed only when its last
in-flight request has finished, so requests in flight complete on the session they started on
and new requests go to the new version. A failed reload keeps the old version serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from edgefleet.errors import EdgefleetError
from edgefleet.runtime.backend import Session, load_model
from edgefleet.runtime.config import ModelConfig
from edgefleet.runtime.errors import ModelNotFoundError, ModelNotReadyError
from edgefleet.runtime.repository import ModelRepository
from edgefleet.runtime.scheduler import DirectRunner, DynamicBatcher, RunResult, Scheduler
from edgefleet.runtime.session import SessionConfig, file_sha256

__all__ = ["LoadedModel", "ModelManager", "ModelState", "RuntimeObserver"]

log = logging.getLogger(__name__)

State = Literal["READY", "UNAVAILABLE", "LOADING", "UNLOADING"]

ACCELERATORS = frozenset(
    {
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "MIGraphXExecutionProvider",
        "DmlExecutionProvider",
    }
)
"""Providers where batching pays (GPUs): dynamic batching defaults to on there, off elsewhere."""


class RuntimeObserver(Protocol):
    """What the manager reports (the server turns it into metrics)."""

    def model_loaded(self, name: str, version: str, seconds: float) -> None: ...

    def batch_executed(self, name: str, version: str, size: int) -> None: ...


@dataclass(frozen=True)
class ModelState:
    """One row of the repository index."""

    name: str
    version: str
    state: State
    reason: str = ""


class LoadedModel:
    """One version in memory: its session, its scheduler and its in-flight count."""

    def __init__(
        self,
        name: str,
        version: int,
        session: Session,
        config: ModelConfig,
        observer: RuntimeObserver | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.session = session
        self.config = config
        self._observer = observer
        self._in_flight = 0
        self._retired = False
        self._lock = threading.Lock()
        on_batch: Callable[[int], None] | None = None
        if observer is not None:

            def on_batch(size: int) -> None:
                observer.batch_executed(name, str(version), size)

        batching = config.dynamic_batching
        wanted = batching.enabled if batching.enabled is not None else session.providers[0] in ACCELERATORS
        self.batching = wanted and all(s.shape and s.shape[0] < 0 for s in session.inputs)
        if batching.enabled and not self.batching:
            log.warning(
                "dynamic batching needs a dynamic first dimension on every input; off",
                extra={"model": name, "version": version},
            )
        self.scheduler: Scheduler = (
            DynamicBatcher(session, batching, instances=config.instances, on_batch=on_batch, name=name)
            if self.batching
            else DirectRunner(session, instances=config.instances, on_batch=on_batch)
        )

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _acquire(self) -> bool:
        with self._lock:
            if self._retired:
                return False
            self._in_flight += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            close = self._retired and self._in_flight == 0
        if close:
            self.scheduler.close()

    def retire(self) -> None:
        """Take no new requests; close once the in-flight ones are done."""
        with self._lock:
            self._retired = True
            close = self._in_flight == 0
        if close:
            self.scheduler.close()

    def infer(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None) -> RunResult:
        """Validate and run one request through the scheduler."""
        self.session.validate(feeds, outputs)
        return self.scheduler.submit(feeds, outputs)


class ModelManager:
    """The models of one repository that are in memory, by name and version."""

    def __init__(
        self,
        repository: ModelRepository,
        defaults: SessionConfig | None = None,
        *,
        observer: RuntimeObserver | None = None,
        loader: Callable[..., Session] = load_model,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.repository = repository
        self.defaults = defaults or SessionConfig()
        self._observer = observer
        self._loader = loader
        self._clock = clock
        self._models: dict[str, dict[int, LoadedModel]] = {}
        self._failures: dict[str, dict[str, str]] = {}
        self._loading: set[str] = set()
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}
        self._fingerprints: dict[str, tuple[object, ...]] = {}

    def _session_config(self, config: ModelConfig) -> SessionConfig:
        rt = config.runtime
        changes: dict[str, object] = {}
        if rt.providers is not None:
            changes["providers"] = (rt.providers,) if isinstance(rt.providers, str) else tuple(rt.providers)
        for key in (
            "pick_fastest",
            "intra_op_threads",
            "inter_op_threads",
            "allow_spinning",
            "optimization_level",
            "backend",
            "allow_cpu_fallback",
        ):
            value = getattr(rt, key)
            if value is not None:
                changes[key] = value
        if rt.delegates is not None:
            changes["delegates"] = tuple(rt.delegates)
        return replace(self.defaults, **changes)  # type: ignore[arg-type]

    def load_all(self) -> dict[str, EdgefleetError]:
        """Load every model in the repository; returns the errors of those that failed."""
        errors: dict[str, EdgefleetError] = {}
        for name in self.repository.names():
            try:
                self.load(name)
            except EdgefleetError as exc:
                errors[name] = exc
        return errors

    def load(self, name: str) -> list[LoadedModel]:
        """(Re)load ``name`` from the repository: new versions in, versions off the policy out.

        Versions already loaded from an unchanged file are kept. If a new version fails to load,
        the error is raised and what was serving keeps serving.
        """
        with self._lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            self._fingerprints[name] = self.repository.fingerprint(name)
            try:
                source = self.repository.source(name)
            except ModelNotFoundError:
                raise
            except EdgefleetError as exc:  # a config that does not validate: keep what serves, say why
                with self._lock:
                    self._failures[name] = {"": exc.message}
                raise
            wanted = source.selected()
            with self._lock:
                current = dict(self._models.get(name, {}))
                self._loading.add(name)
            fresh: dict[int, LoadedModel] = {}
            failures: dict[str, str] = {}
            try:
                for version in wanted:
                    path = source.versions[version]
                    old = current.get(version)
                    if old is not None and old.config == source.config and _same_file(old, path):
                        fresh[version] = old
                        continue
                    started = self._clock()
                    try:
                        session = self._loader(path, config=self._session_config(source.config))
                    except EdgefleetError as exc:
                        failures[str(version)] = exc.message
                        log.warning(
                            "model load failed",
                            extra={"model": name, "version": version, "error": exc.message},
                        )
                        if old is not None:
                            fresh[version] = old
                        raise
                    fresh[version] = LoadedModel(name, version, session, source.config, self._observer)
                    if self._observer is not None:
                        self._observer.model_loaded(name, str(version), self._clock() - started)
                        selected = getattr(self._observer, "model_selected", None)
                        if selected is not None:
                            provider = session.providers[0] if session.providers else ""
                            selected(name, str(version), session.backend, provider)
            except EdgefleetError:
                self._swap(name, {**current, **fresh}, current, failures)
                raise
            self._swap(name, fresh, current, failures)
            return list(fresh.values())

    def _swap(
        self,
        name: str,
        fresh: dict[int, LoadedModel],
        current: dict[int, LoadedModel],
        failures: dict[str, str],
    ) -> None:
        with self._lock:
            self._loading.discard(name)
            if fresh:
                self._models[name] = fresh
            else:
                self._models.pop(name, None)
            if failures:
                self._failures[name] = failures
            else:
                self._failures.pop(name, None)
        for version, old in current.items():
            if fresh.get(version) is not old:
                old.retire()

    def poll(self) -> dict[str, EdgefleetError]:
        """Sync with the repository once: load new or changed models, unload removed ones.

        Only models this manager has seen (loaded, or failed to load) are unloaded when their
        directory disappears; a model unloaded through the API stays unloaded until it changes.
        """
        errors: dict[str, EdgefleetError] = {}
        names = set(self.repository.names())
        with self._lock:
            known = dict(self._fingerprints)
        for name in sorted(names):
            if known.get(name) == self.repository.fingerprint(name):
                continue
            try:
                self.load(name)
            except EdgefleetError as exc:
                errors[name] = exc
        for name in sorted(set(known) - names):
            with self._lock:
                self._fingerprints.pop(name, None)
            self._unload(name)
        return errors

    def unload(self, name: str) -> None:
        """Stop serving ``name``; in-flight requests finish first. Unknown names raise 404."""
        if not self._unload(name):
            self.repository.source(name)

    def _unload(self, name: str) -> bool:
        with self._lock:
            current = self._models.pop(name, None)
            self._failures.pop(name, None)
        if current is None:
            return False
        for model in current.values():
            model.retire()
        return True

    def close(self) -> None:
        """Unload everything."""
        with self._lock:
            names = list(self._models)
        for name in names:
            self._unload(name)

    def loaded(self, name: str) -> dict[int, LoadedModel]:
        with self._lock:
            return dict(self._models.get(name, {}))

    def _pick(self, name: str, version: str | None) -> LoadedModel:
        with self._lock:
            versions = self._models.get(name)
            failures = self._failures.get(name)
        if not versions:
            if failures:
                raise ModelNotReadyError(
                    f"model {name!r} is not ready: {next(iter(failures.values()))}",
                    model=name,
                )
            if name in self.repository.names():
                raise ModelNotReadyError(f"model {name!r} is not loaded", model=name)
            raise ModelNotFoundError(f"unknown model {name!r}", model=name)
        if not version:
            return versions[max(versions)]
        if not version.isdigit() or int(version) not in versions:
            raise ModelNotFoundError(
                f"model {name!r} has no loaded version {version!r}; loaded: "
                f"{', '.join(str(v) for v in sorted(versions))}",
                code="runtime.version_not_found",
                model=name,
                version=version,
                loaded=sorted(versions),
            )
        return versions[int(version)]

    def get(self, name: str, version: str | None = None) -> LoadedModel:
        """The version serving ``name`` (the newest when ``version`` is empty), without a lease."""
        return self._pick(name, version)

    @contextmanager
    def lease(self, name: str, version: str | None = None) -> Iterator[LoadedModel]:
        """Hold a version for the duration of one request, so a reload cannot close it mid-way."""
        for _ in range(100):
            model = self._pick(name, version)
            if model._acquire():
                break
        else:
            raise ModelNotReadyError(f"model {name!r} is being replaced; retry", model=name)
        try:
            yield model
        finally:
            model._release()

    def is_ready(self, name: str, version: str | None = None) -> bool:
        try:
            self._pick(name, version)
        except EdgefleetError:
            return False
        return True

    def index(self) -> list[ModelState]:
        """Every model the repository holds or that is loaded, with its state."""
        with self._lock:
            loaded = {n: sorted(v) for n, v in self._models.items()}
            failures = {n: dict(f) for n, f in self._failures.items()}
            loading = set(self._loading)
        rows: list[ModelState] = []
        for name in sorted(set(self.repository.names()) | set(loaded) | set(failures)):
            ready = loaded.get(name, [])
            rows.extend(ModelState(name, str(v), "READY") for v in ready)
            rows.extend(
                ModelState(name, v, "UNAVAILABLE", reason)
                for v, reason in failures.get(name, {}).items()
                if not v.isdigit() or int(v) not in ready
            )
            if name not in loaded and name not in failures:
                rows.append(
                    ModelState(
                        name,
                        "",
                        "LOADING" if name in loading else "UNAVAILABLE",
                        "" if name in loading else "unloaded",
                    )
                )
        return rows


def _same_file(model: LoadedModel, path: Path) -> bool:
    try:
        return file_sha256(path) == model.session.sha256
    except OSError:
        return False
