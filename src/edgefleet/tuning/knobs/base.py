"""What file-backed knobs share: plan one path, write it, verify it, write the original back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgefleet.tuning.knob import Check, Setting, Step
from edgefleet.tuning.roots import Roots, read_file, write_file

__all__ = ["FileKnob", "contained"]


def contained(path: Path, root: Path) -> bool:
    """True when ``path`` (after resolving ``..`` and links) stays below ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


class FileKnob:
    """Base for knobs whose steps each write one kernel file."""

    kind = "file"

    def __init__(self, roots: Roots) -> None:
        self.roots = roots

    def current(self, raw: str) -> str:
        """The comparable value inside the file's text (THP overrides this for ``[bracketed]``)."""
        return raw.strip()

    def plan_path(
        self,
        setting: Setting,
        path: Path,
        *,
        choices: Sequence[str] | None = None,
        accept: tuple[str, ...] = (),
        best_effort: bool = False,
        target: str | None = None,
    ) -> Step:
        """Plan writing ``setting`` (or an explicit ``target``) to ``path``."""
        raw = read_file(path)
        if raw is None:
            return Step(setting, str(path), None, None, "unsupported", note=f"missing: {path}")
        current = self.current(raw)
        original = self.original(raw)
        t = setting.target
        if target is not None:
            ok = current == target
            return Step(
                setting,
                str(path),
                current,
                target,
                "ok" if ok else "set",
                original=original,
                best_effort=best_effort,
                accept=accept,
            )
        if t.modifier and not t.wants_change(current):
            return Step(
                setting, str(path), current, t.alternatives[0], "keep", original=original, accept=accept
            )
        if t.accepts(current) or current in accept:
            return Step(setting, str(path), current, current, "ok", original=original, accept=accept)
        wanted = [a for a in t.alternatives if choices is None or a in choices]
        if not wanted:
            offered = " ".join(choices or ())
            return Step(
                setting,
                str(path),
                current,
                None,
                "unsupported",
                note=f"none of {t.raw!r} offered here (available: {offered or 'none'})",
            )
        return Step(
            setting,
            str(path),
            current,
            wanted[0],
            "set",
            original=original,
            best_effort=best_effort,
            accept=accept,
        )

    def original(self, raw: str) -> str:
        """What to write back to restore the file as it was read."""
        return raw

    def apply(self, step: Step) -> None:
        if step.target is None:
            raise ValueError(f"step {step.key} has nothing to write")
        write_file(Path(step.key), step.target)

    def read(self, key: str) -> str | None:
        raw = read_file(Path(key))
        return None if raw is None else self.current(raw)

    def verify(self, step: Step) -> Check:
        if step.action == "unsupported":
            return Check(step, "skipped", None, step.note or "unsupported here")
        current = self.read(step.key)
        if current is None:
            return Check(step, "failed", None, f"missing: {step.key}")
        if step.action == "keep" and not step.setting.target.wants_change(current):
            return Check(step, "passed", current)
        wanted = step.target if step.target is not None else step.setting.target.raw
        if step.setting.target.accepts(current) or current in step.accept:
            return Check(step, "passed", current)
        if step.target is not None and current == step.target:
            return Check(step, "passed", current)
        return Check(step, "failed", current, f"expected {wanted!r}")

    def rollback(self, key: str, original: str) -> None:
        write_file(Path(key), original)
