"""device logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 03:50:00

Log lines devices ship (``device_logs``) and, per device, the last log batch stored
(``devices.log_batch``), so a batch sent twice is stored once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_logs",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("workload", sa.String(length=128), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_logs_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_logs")),
    )
    with op.batch_alter_table("device_logs", schema=None) as batch_op:
        batch_op.create_index("ix_device_logs_device_id_id", ["device_id", "id"], unique=False)
        batch_op.create_index("ix_device_logs_device_id_ts", ["device_id", "ts"], unique=False)
        batch_op.create_index("ix_device_logs_received_at", ["received_at"], unique=False)
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("log_batch", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("log_batch")
    with op.batch_alter_table("device_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_device_logs_received_at")
        batch_op.drop_index("ix_device_logs_device_id_ts")
        batch_op.drop_index("ix_device_logs_device_id_id")
    op.drop_table("device_logs")
