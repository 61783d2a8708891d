"""complaints with their subject; what each customer is worth

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import campaigns.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "complaints",
        sa.Column("id", _TEXT(length=128), nullable=False),
        sa.Column("customer_id", _TEXT(), nullable=False),
        sa.Column("order_id", _TEXT(), nullable=True),
        sa.Column("sku", _TEXT(), nullable=True),
        sa.Column("category", _TEXT(), nullable=True),
        sa.Column("reason", _TEXT(), nullable=True),
        sa.Column("opened_at", campaigns.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", campaigns.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index("ix_complaints_opened", ["opened_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_customer_id"), ["customer_id"])
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("orders", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("revenue", _TEXT(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("revenue_currency", _TEXT(), nullable=False, server_default="")
        )
        for name in ("first_purchase_at", "last_purchase_at"):
            batch_op.add_column(
                sa.Column(name, campaigns.models.UTCDateTime(timezone=True), nullable=True)
            )
        batch_op.add_column(
            sa.Column("complaints", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("satisfaction", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("satisfaction_at", campaigns.models.UTCDateTime(timezone=True), nullable=True)
        )
    _backfill()


def _backfill() -> None:
    """Orders, revenue and purchase times of the customers already imported."""
    op.execute(
        """
        UPDATE customers SET
          orders = (SELECT count(*) FROM purchases p
                    WHERE p.customer_id = customers.id AND p.returned_at IS NULL),
          first_purchase_at = (SELECT min(purchased_at) FROM purchases p
                               WHERE p.customer_id = customers.id),
          last_purchase_at = (SELECT max(purchased_at) FROM purchases p
                              WHERE p.customer_id = customers.id)
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        for name in (
            "satisfaction_at", "satisfaction", "complaints", "last_purchase_at",
            "first_purchase_at", "revenue_currency", "revenue", "orders",
        ):  # fmt: skip
            batch_op.drop_column(name)
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaints_customer_id"))
        batch_op.drop_index("ix_complaints_opened")
    op.drop_table("complaints")
