"""experiments: messages.variant names the variant of its step a message went out as

A step may list variants (campaigns.experiments); the one drawn for the customer is written
on the message when it is reserved, so the send log and the report can tell them apart.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("variant", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("variant")
