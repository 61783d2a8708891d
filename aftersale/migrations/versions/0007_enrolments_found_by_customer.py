"""enrolments found by customer: one unique key, customer first, instead of three indexes

An enrolment's uniqueness was (journey_id, customer_id, entry_key), and two more indexes
found a customer's enrolments and an order's. Every query that looks for enrolments by
anything but their id names the customer, so the unique key now leads with the customer
(customer_id, journey_id, entry_key) and serves them all; the indexes on customer_id and
order_id go. Each enrolment is written into two indexes fewer.

SQLite cannot alter a table's UNIQUE constraint, so there the table is rebuilt (with
foreign keys off, see aftersale.database.migrate).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:00:00
"""

import sqlalchemy as sa
from alembic import op

from campaigns.models import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_KEY = ("journey_id", "customer_id", "entry_key")
NEW_KEY = ("customer_id", "journey_id", "entry_key")
NEW_NAME = "uq_enrollments_customer_entry"
INDEXES = {"ix_enrollments_customer_id": "customer_id", "ix_enrollments_order_id": "order_id"}


def _enrollments(key: tuple[str, ...], name: str | None, *, indexes: bool) -> sa.Table:
    """The table with its unique key on ``key`` and, if asked, the indexes 0001 gave it."""
    table = sa.Table(
        "enrollments",
        sa.MetaData(),
        sa.Column("id", sa.String(length=400), primary_key=True),
        sa.Column("journey_id", sa.String(), nullable=False),
        sa.Column("journey_version_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("item_position", sa.Integer(), nullable=True),
        sa.Column("entry_key", sa.String(), nullable=False),
        sa.Column("trigger_event_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("enrolled_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("schedule", sa.JSON(none_as_null=True), nullable=True),
        sa.ForeignKeyConstraint(["journey_version_id"], ["journey_versions.id"]),
        sa.UniqueConstraint(*key, name=name),
    )
    if indexes:
        for index, column in INDEXES.items():
            sa.Index(index, table.c[column])
    return table


def _rebuild_sqlite(table: sa.Table) -> None:
    """Rebuild enrollments on SQLite as ``table`` describes it, rows and all.

    Batch mode copies the table it is given (instead of reflecting the old one) into a new
    table, moves the rows over column by column and drops the old.
    """
    with op.batch_alter_table("enrollments", copy_from=table, recreate="always"):
        pass


def _unique_name(key: tuple[str, ...]) -> str:
    """The name PostgreSQL gave the unique constraint on ``key``."""
    for constraint in sa.inspect(op.get_bind()).get_unique_constraints("enrollments"):
        if tuple(constraint["column_names"]) == key:
            return constraint["name"]
    raise LookupError(f"enrollments has no unique constraint on {', '.join(key)}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(_enrollments(NEW_KEY, NEW_NAME, indexes=False))
        return
    op.create_unique_constraint(NEW_NAME, "enrollments", list(NEW_KEY))
    op.drop_constraint(_unique_name(OLD_KEY), "enrollments", type_="unique")
    for index in INDEXES:
        op.drop_index(index, table_name="enrollments")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite(_enrollments(OLD_KEY, None, indexes=True))
        return
    for index, column in INDEXES.items():
        op.create_index(index, "enrollments", [column])
    # The name PostgreSQL gives an unnamed constraint, as revision 0001 left it.
    op.create_unique_constraint(
        "enrollments_journey_id_customer_id_entry_key_key", "enrollments", list(OLD_KEY)
    )
    op.drop_constraint(NEW_NAME, "enrollments", type_="unique")
