"""figures and refusals: attempt.endpoint_id, attempt.retried, their indexes; source_refusal

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("retried", sa.Boolean(), nullable=True))
    # Attempts recorded before: their endpoint from the delivery, and whether the
    # delivery went on after a failure (a later attempt, or one still to come).
    # One pass over the table, whatever its size.
    op.execute(
        "UPDATE attempt SET "
        "endpoint_id = (SELECT delivery.endpoint_id FROM delivery "
        "WHERE delivery.id = attempt.delivery_id), "
        "retried = CASE WHEN status_code BETWEEN 200 AND 299 THEN NULL "
        "ELSE EXISTS (SELECT 1 FROM delivery WHERE delivery.id = attempt.delivery_id "
        "AND (delivery.attempt_count > attempt.attempt OR delivery.status = 'pending')) END"
    )
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attempt_started_at",
            ["started_at", "status_code", "duration_ms", "retried", "endpoint_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_attempt_endpoint_id_started_at", ["endpoint_id", "started_at"], unique=False
        )
    op.create_table(
        "source_refusal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.String(length=40), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("message", sa.String(length=255), nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["source.id"],
            name=op.f("fk_source_refusal_source_id_source"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_refusal")),
    )
    with op.batch_alter_table("source_refusal", schema=None) as batch_op:
        batch_op.create_index("ix_source_refusal_source_id_id", ["source_id", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("source_refusal", schema=None) as batch_op:
        batch_op.drop_index("ix_source_refusal_source_id_id")
    op.drop_table("source_refusal")
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_attempt_endpoint_id_started_at")
        batch_op.drop_index("ix_attempt_started_at")
        batch_op.drop_column("retried")
        batch_op.drop_column("endpoint_id")
