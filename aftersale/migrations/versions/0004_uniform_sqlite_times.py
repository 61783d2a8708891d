"""uniform SQLite times: bulk-planned rows get the microseconds every other write has

Planned messages, enrolments and purchases were written by a bulk path that stored whole
seconds as ``2026-03-02 09:00:00`` where SQLAlchemy writes ``2026-03-02 09:00:00.000000``.
SQLite compares these as text, so the same instant written both ways compared as earlier.
PostgreSQL stores real timestamps and needs nothing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:30:00
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = {
    "messages": ("due_at", "planned_at", "expires_at"),
    "enrollments": ("enrolled_at",),
    "purchases": ("purchased_at",),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(
                f"UPDATE {table} SET {column} = {column} || '.000000' "
                f"WHERE length({column}) = 19"
            )


def downgrade() -> None:
    """Nothing to undo: both forms read back as the same time."""
