"""planned and sending messages out of the figures' and the decided view's indexes

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 08:00:00

Every planned message entered both indexes when it was planned and moved in them when it
was marked ``sending``, although neither reads such a message: the figures count what has
an outcome, the decided view what is no longer planned. As partial indexes they are
written once, when a message is decided.
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

COLUMNS = [
    "journey_id", "step", "channel", "customer_id", "category", "status", "reason", "due_at",
    "sent_at", "provider", "delivered_at", "opened_at", "clicked_at", "variant", "segments",
]  # fmt: skip
FIGURED = "status NOT IN ('planned', 'sending')"
DECIDED = "status != 'planned'"


def _create(partial: bool) -> None:
    def where(condition: str) -> dict[str, sa.TextClause]:
        if not partial:
            return {}
        return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}

    op.create_index("ix_messages_journey_figures", "messages", COLUMNS, **where(FIGURED))
    op.create_index("ix_messages_decided", "messages", ["updated_at"], **where(DECIDED))


def _drop() -> None:
    op.drop_index("ix_messages_decided", table_name="messages")
    op.drop_index("ix_messages_journey_figures", table_name="messages")


def upgrade() -> None:
    _drop()
    _create(partial=True)


def downgrade() -> None:
    _drop()
    _create(partial=False)
