"""Minimal OCI images of a bundle, built without a daemon, run with podman."""
