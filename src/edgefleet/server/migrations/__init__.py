"""Alembic migration scripts of the control plane's database."""
