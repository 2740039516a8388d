"""routing: the event-type catalogue, endpoint filters and transformations, source
validation and transformations, and the event type on deliveries

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_type",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("data_schema", sa.JSON(), nullable=True),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("deprecated", sa.Boolean(), nullable=False),
        sa.Column("archived_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_type")),
    )
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("filter", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("transformation", sa.Text(), nullable=True))
    with op.batch_alter_table("source", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("validate_data", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("transformation", sa.Text(), nullable=True))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_type", sa.String(length=255), nullable=True))
    # Deliveries made before: their event's type. One pass over the table.
    op.execute(
        "UPDATE delivery SET event_type = "
        "(SELECT event.type FROM event WHERE event.id = delivery.event_id)"
    )
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_delivery_status_event_type", ["status", "event_type", "event_id"], unique=False
        )
    if op.get_context().dialect.name == "postgresql":
        # Statuses and types are not independent (the failed deliveries may all be of
        # one type): without their joint frequencies the planner guesses that a
        # status and a type that never meet are common, and reads the events in
        # order hoping to meet them soon, scanning them all.
        op.execute(
            "CREATE STATISTICS IF NOT EXISTS st_delivery_status_event_type (mcv) "
            "ON status, event_type FROM delivery"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_delivery_status_event_type")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_status_event_type")
        batch_op.drop_column("event_type")
    with op.batch_alter_table("source", schema=None) as batch_op:
        batch_op.drop_column("transformation")
        batch_op.drop_column("validate_data")
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.drop_column("transformation")
        batch_op.drop_column("filter")
    op.drop_table("event_type")
