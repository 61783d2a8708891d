"""skipped messages carry no send time

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 13:00:00

A batch's bundle candidates (planned messages) and the messages its carriers already took
along (skipped) are read through the customer's index at ``sent_at IS NULL``, not the
customer's whole history. Every move to ``skipped`` clears ``sent_at`` now; a message an
older release took back to ``planned`` with its send time and then skipped may still
carry one, and is cleared here, so a carrier sent again still finds what it carried.
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE messages SET sent_at = NULL WHERE status = 'skipped' AND sent_at IS NOT NULL"
    )


def downgrade() -> None:
    pass  # a send time a skipped message never had is not restored
