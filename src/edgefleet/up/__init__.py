"""`edgefleet up` / `edgefleet down`: the control plane, a device agent, a signed bundle rolled out
in two waves and a pipeline feeding the model, all on this machine (docs/up.md)."""

from edgefleet.up.stack import PROCESSES, Progress, UpOptions, bring_down, bring_up
from edgefleet.up.summary import Summary

__all__ = ["PROCESSES", "Progress", "Summary", "UpOptions", "bring_down", "bring_up"]
