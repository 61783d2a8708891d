"""failed events: an event that cannot be applied fails alone, visibly and retryably

An exception while applying one event (a purchase whose numbers overflow a date, say) used
to roll back the whole batch on every tick, so no event after it was ever applied. Such an
event is now set aside: ``failed_at``, ``error`` (``error:<kind>``) and ``error_detail``
say when and why, and ``aftersale events retry`` queues it again. A partial index finds the
failed few without costing the many inserts anything.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 09:30:00
"""

import sqlalchemy as sa
from alembic import op

from campaigns.models import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FAILED = sa.text("failed_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("failed_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("error", sa.String(), nullable=True))
        batch.add_column(sa.Column("error_detail", sa.String(), nullable=True))
    op.create_index(
        "ix_events_failed", "events", ["failed_at"], sqlite_where=FAILED, postgresql_where=FAILED
    )


def downgrade() -> None:
    op.drop_index("ix_events_failed", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("error_detail")
        batch.drop_column("error")
        batch.drop_column("failed_at")
