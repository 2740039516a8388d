"""ordered delivery: ordering keys and their sequences on events and deliveries,
the per-key sequence counter, and an endpoint's ordering

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOT_NULL_KEY = sa.text("ordering_key IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "ordering_key",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_ordering_key")),
    )
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering", sa.String(length=8), nullable=True))
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ordering_key", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("sequence", sa.BigInteger(), nullable=True))
    op.create_index(
        "ix_event_ordering_key_sequence",
        "event",
        ["ordering_key", "sequence"],
        postgresql_where=_NOT_NULL_KEY,
        sqlite_where=_NOT_NULL_KEY,
    )
    op.create_index(
        "ix_delivery_endpoint_id_ordering_key_sequence",
        "delivery",
        ["endpoint_id", "ordering_key", "sequence"],
        postgresql_where=_NOT_NULL_KEY,
        sqlite_where=_NOT_NULL_KEY,
    )


def downgrade() -> None:
    op.drop_index("ix_delivery_endpoint_id_ordering_key_sequence", table_name="delivery")
    op.drop_index("ix_event_ordering_key_sequence", table_name="event")
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("sequence")
        batch_op.drop_column("ordering_key")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("sequence")
        batch_op.drop_column("ordering_key")
    with op.batch_alter_table("endpoint", schema=None) as batch_op:
        batch_op.drop_column("ordering")
    op.drop_table("ordering_key")
