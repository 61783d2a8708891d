"""the figures of a journey read from one index; the send log's decided view by decision time

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02 14:10:00
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

COLUMNS = [
    "journey_id", "step", "channel", "customer_id", "category", "status", "reason", "due_at",
    "sent_at", "provider", "delivered_at", "opened_at", "clicked_at", "variant",
]  # fmt: skip


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_journey_step")
        batch_op.create_index("ix_messages_journey_figures", COLUMNS, unique=False)
        batch_op.create_index("ix_messages_decided", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_decided")
        batch_op.drop_index("ix_messages_journey_figures")
        batch_op.create_index("ix_messages_journey_step", ["journey_id", "step"], unique=False)
