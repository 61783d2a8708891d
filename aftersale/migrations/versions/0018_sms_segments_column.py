"""a sent SMS's segments as a column of its own, filled from its details, in the figures' index

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BEFORE = [
    "journey_id", "step", "channel", "customer_id", "category", "status", "reason", "due_at",
    "sent_at", "provider", "delivered_at", "opened_at", "clicked_at", "variant",
]  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("segments", sa.Integer(), nullable=True))
    # The same reading of the details as the figures made before there was a column;
    # on PostgreSQL, where a cast of anything but digits would fail, only digits.
    if op.get_bind().dialect.name == "sqlite":
        segments = "CAST(json_extract(details, '$.\"segments\"') AS INTEGER)"
    else:
        text = "(details ->> 'segments')"
        segments = f"CASE WHEN {text} ~ '^[0-9]+$' THEN CAST({text} AS INTEGER) END"
    op.execute(
        f"UPDATE messages SET segments = {segments} WHERE channel = 'sms' AND {segments} IS NOT NULL"
    )
    # With the segments in it, the figures are read off the index alone, never the rows.
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_journey_figures")
        batch_op.create_index("ix_messages_journey_figures", [*BEFORE, "segments"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_journey_figures")
        batch_op.create_index("ix_messages_journey_figures", BEFORE, unique=False)
        batch_op.drop_column("segments")
