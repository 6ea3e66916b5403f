"""Stream pipelines: sources → transforms → models (chained) → post-processing → sinks.

Start at :mod:`edgefleet.pipeline.spec` (what a spec says), :mod:`edgefleet.pipeline.specfile`
(loading it) and :class:`edgefleet.pipeline.runner.Pipeline` (running it). The seams are
``Source`` (:mod:`.sources.base`), ``Model`` (:mod:`.inference`) and ``Sink`` (:mod:`.sinks.base`).
"""
