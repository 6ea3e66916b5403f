"""`edgefleet up` / `edgefleet down`: the control plane, a device agent, a signed bundle rolled out
in two waves and a pipeline feeding the model, all on this machine (docs/up.md)."""

from edgefleet.up.down import bring_down
from edgefleet.up.progress import Progress
from edgefleet.up.stack import PROCESSES, UpOptions, bring_up
from edgefleet.up.summary import Summary

__all__ = ["PROCESSES", "Progress", "Summary", "UpOptions", "bring_down", "bring_up"]
