"""postal codes as text: customer attributes imported as numbers become the text they were

The customer import turned every whole number into a number, postal codes included, so
``customer.postal_code.startswith("10")`` failed and ``01067`` and ``10115`` were of two
different types. Postal codes are now kept as text; this gives existing customers theirs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# As in campaigns.importing.TEXT_ATTRIBUTES when this migration was written.
TEXT_ATTRIBUTES = ("postal_code", "postcode", "zip", "zip_code", "plz")
customers = sa.table("customers", sa.column("id", sa.String), sa.column("attributes", sa.JSON))


def upgrade() -> None:
    conn = op.get_bind()
    changed = []
    for cid, attributes in conn.execute(sa.select(customers.c.id, customers.c.attributes)):
        if not isinstance(attributes, dict):
            continue
        fixed = {
            k: str(v) if k.lower() in TEXT_ATTRIBUTES and isinstance(v, int) else v
            for k, v in attributes.items()
        }
        if fixed != attributes:
            changed.append({"cid": cid, "attributes": fixed})
    if changed:
        conn.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("cid"))
            .values(attributes=sa.bindparam("attributes")),
            changed,
        )


def downgrade() -> None:
    """Nothing to undo: text postal codes are what the import writes from now on."""
