"""bundles: messages.bundled_into names the message that carried a bundled one

Per-item messages of one customer, journey and step that fall due together go out as one
message (campaigns.bundling). The others end ``skipped`` with reason ``bundled``; this
column holds the id of the message that carried them, so the log says where each went.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("bundled_into", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("bundled_into")
