"""The control plane: fleet, enrollment, bundles, deployments, health-gated rollouts, audit.

Layers: :mod:`~edgefleet.server.api` (thin FastAPI routers) over the core modules here
(:mod:`tenancy`, :mod:`devices`, :mod:`bundles`, :mod:`deployments`, :mod:`rollout`, :mod:`desired`)
over :mod:`~edgefleet.server.store` (SQLAlchemy models, Alembic migrations).
"""

from edgefleet.server.context import ServerContext, ServerSettings
from edgefleet.server.service import open_server

__all__ = ["ServerContext", "ServerSettings", "open_server"]
