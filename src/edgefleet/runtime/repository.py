"""A model repository on disk, laid out like Triton's, or a single ``.onnx``/``.tflite`` file.

::

    <repo>/
      <model>/
        config.toml            optional (or config.json), see edgefleet.runtime.config
        1/model.onnx
        2/model.onnx           numeric version directories; the newest is served by default

A single file ``path/to/name.onnx`` is served as model ``name``, version 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from edgefleet.runtime.config import CONFIG_NAMES, ModelConfig, read_model_config
from edgefleet.runtime.errors import ModelNotFoundError

__all__ = ["MODEL_FILE", "ModelRepository", "ModelSource"]

MODEL_FILE: Final = "model.onnx"
MODEL_FILES: Final = (MODEL_FILE, "model.tflite")
"""Files a version directory may hold, first found wins; the suffix picks the backend."""
_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ModelSource:
    """What the repository holds for one model: its versions on disk and its configuration."""

    name: str
    versions: dict[int, Path]
    config: ModelConfig

    def selected(self) -> list[int]:
        """Versions the version policy asks to serve, oldest first."""
        policy = self.config.version_policy
        available = sorted(self.versions)
        if policy == "latest":
            return available[-1:]
        if policy == "all":
            return available
        return [v for v in available if v in set(policy)]


class ModelRepository:
    """Reads models from ``root``: a repository directory or a single ``.onnx`` file."""

    def __init__(
        self, root: Path | str, *, single_name: str | None = None, defaults: ModelConfig | None = None
    ) -> None:
        self.root = Path(root)
        self.defaults = defaults or ModelConfig()
        """Configuration for models without a config file, and under the keys a file leaves out."""
        if self.root.is_file():
            self.single: Path | None = self.root
            self.single_name = single_name or self.root.stem
        elif self.root.is_dir():
            self.single = None
            self.single_name = ""
        else:
            raise ModelNotFoundError(
                f"model path {self.root} is neither a model file (.onnx, .tflite) nor a repository directory",
                code="runtime.repository_not_found",
                path=str(self.root),
            )

    def names(self) -> list[str]:
        """Model names in the repository, sorted (directories with at least one version)."""
        if self.single is not None:
            return [self.single_name]
        return [
            child.name
            for child in sorted(self.root.iterdir())
            if child.is_dir() and _NAME.match(child.name) and self._versions(child)
        ]

    @staticmethod
    def _versions(model_dir: Path) -> dict[int, Path]:
        versions: dict[int, Path] = {}
        try:
            children = list(model_dir.iterdir())
        except OSError:
            return versions
        for child in children:
            if not child.name.isdigit():
                continue
            for file_name in MODEL_FILES:
                if (child / file_name).is_file():
                    versions[int(child.name)] = child / file_name
                    break
        return versions

    def fingerprint(self, name: str) -> tuple[object, ...]:
        """What changes when a model's files change (versions, sizes, mtimes, config): for polling."""
        if self.single is not None:
            paths = [self.single]
        else:
            model_dir = self.root / name
            paths = sorted(self._versions(model_dir).values()) + [model_dir / n for n in CONFIG_NAMES]
        out: list[object] = []
        for path in paths:
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_size, st.st_mtime_ns))
        return tuple(out)

    def source(self, name: str) -> ModelSource:
        """Scan one model now. Raises :class:`ModelNotFoundError` or :class:`ModelConfigError`."""
        if self.single is not None:
            if name != self.single_name:
                raise ModelNotFoundError(f"unknown model {name!r}", model=name, known=[self.single_name])
            return ModelSource(name, {1: self.single}, self.defaults)
        if not _NAME.match(name):
            raise ModelNotFoundError(f"unknown model {name!r}", model=name)
        model_dir = self.root / name
        versions = self._versions(model_dir) if model_dir.is_dir() else {}
        if not versions:
            raise ModelNotFoundError(
                f"unknown model {name!r}: no {model_dir}/<version>/{MODEL_FILE}", model=name
            )
        return ModelSource(name, versions, read_model_config(model_dir, self.defaults))
