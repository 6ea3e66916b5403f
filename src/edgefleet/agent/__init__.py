"""The device agent: enrolls, follows the signed desired state, runs workloads, keeps them running offline.

Kept light on purpose: the agent process imports neither numpy nor ONNX Runtime (those live in the
``edgefleet serve`` processes it supervises), nor the server's database layer.
"""
