"""one index for an enrolment's messages: drop ix_messages_enrollment

``ix_messages_enrollment`` (enrollment_id, status) duplicated the unique key (enrollment_id,
step, occurrence), whose first column already finds an enrolment's few messages. Every
planned message paid for both, in two indexes whose pages a batch of purchases touches
all over.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 15:00:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_messages_enrollment", table_name="messages")


def downgrade() -> None:
    op.create_index("ix_messages_enrollment", "messages", ["enrollment_id", "status"])
