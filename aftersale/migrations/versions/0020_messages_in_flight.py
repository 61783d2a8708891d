"""an index of the messages being sent by enrolment; planned messages carry no send time

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 09:00:00

An enrolment completes when none of its messages is planned or being sent. That was
asked through the enrolment's key, which reads every message it ever had; with years of
history a dispatcher spent most of its time there. Planned messages are now found
through the customer's index at ``sent_at IS NULL``, and the few being sent through this
partial index. Every move back to ``planned`` clears ``sent_at``; rows written before that
rule are cleared here, so none of them is left out of a claim.
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

IN_FLIGHT = "status = 'sending'"


def upgrade() -> None:
    op.execute(
        "UPDATE messages SET sent_at = NULL WHERE status = 'planned' AND sent_at IS NOT NULL"
    )
    op.create_index(
        "ix_messages_in_flight",
        "messages",
        ["enrollment_id"],
        sqlite_where=sa.text(IN_FLIGHT),
        postgresql_where=sa.text(IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_in_flight", table_name="messages")
