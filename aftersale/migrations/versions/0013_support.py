"""why an event did not start a journey; each message's subject as rendered

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 10:10:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import campaigns.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "not_enrolled",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("journey_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("event_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", campaigns.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("expression", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "journey_id", name="uq_not_enrolled_event_journey"),
    )
    with op.batch_alter_table("not_enrolled", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_not_enrolled_customer_id"), ["customer_id"], unique=False
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("subject")
    with op.batch_alter_table("not_enrolled", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_not_enrolled_customer_id"))
    op.drop_table("not_enrolled")
