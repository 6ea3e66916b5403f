"""The base of every inventory section: frozen pydantic models with an ``unknown`` reasons map.

Convention (one for the whole inventory): a field that could not be read is ``null`` and its name
is a key of the section's ``unknown`` object, whose value says why (the path and the error, or the
missing tool). A field that *was* read is never listed there. ``null`` without an entry in
``unknown`` means "does not apply" (for example no cpufreq driver for a per-CPU governor map).
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Record", "Section"]


class Record(BaseModel):
    """A frozen, strict JSON record (an accelerator, a camera, a thermal zone)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Section(Record):
    """A record whose fields may be unknown: ``None`` plus a reason in :attr:`unknown`."""

    unknown: dict[str, str] = Field(
        default_factory=dict,
        description="Field name → why that field could not be read (its value is then null).",
    )

    @model_validator(mode="after")
    def _unknown_fields_are_null(self) -> Self:
        for name in self.unknown:
            if name not in type(self).model_fields or name == "unknown":
                raise ValueError(f"unknown lists {name!r}, which is not a field of {type(self).__name__}")
            if getattr(self, name) is not None:
                raise ValueError(f"{type(self).__name__}.{name} is listed as unknown but has a value")
        return self
