"""The HTTP edge of the control plane: FastAPI routers that parse, call the core, and map errors."""

from edgefleet.server.api.app import create_app

__all__ = ["create_app"]
