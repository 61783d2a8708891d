"""handed over: when a reserved message was handed to its provider

A dispatcher commits ``handed_over_at`` just before it calls the provider. When a
dispatcher dies, lease expiry can then tell a message that may have reached the provider
(``unknown``) from one that never left (back to ``planned``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from campaigns.models import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("handed_over_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("handed_over_at")
