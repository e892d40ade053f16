"""street search keys: customer.street_key and customer_address.street_key (indexed)

The staff search by street and house number ("Dlouhá 5") scanned every billing and further
address; the keys (lower-cased, accent-free, single-spaced, as customer.name_key) make it an
index range. Existing rows get their keys here.

Revision ID: 0003_street_search
Revises: 0002_customers
Create Date: 2026-11-27 08:00:00

"""
import unicodedata

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003_street_search'
down_revision = '0002_customers'
branch_labels = None
depends_on = None

BATCH = 5000


def _key(text):
    # As portal.models.base.search_key at the time of this migration.
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    return " ".join(plain.split())


def _fill(table_name):
    conn = op.get_bind()
    table = sa.table(table_name, sa.column("id", sa.Integer), sa.column("street", sa.String),
                     sa.column("street_key", sa.String))
    last = 0
    while True:
        rows = conn.execute(sa.select(table.c.id, table.c.street).where(table.c.id > last)
                            .order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        conn.execute(table.update().where(table.c.id == sa.bindparam("row_id"))
                     .values(street_key=sa.bindparam("key")),
                     [{"row_id": row_id, "key": _key(street)} for row_id, street in rows])
        last = rows[-1][0]


def upgrade():
    for table_name in ('customer', 'customer_address'):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.add_column(sa.Column('street_key', sa.String(length=200), nullable=False, server_default=''))
        _fill(table_name)
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            # (The server default stays: dropping it would make SQLite copy the table.)
            batch_op.create_index(batch_op.f(f'ix_{table_name}_street_key'), ['street_key'], unique=False)


def downgrade():
    for table_name in ('customer_address', 'customer'):
        with op.batch_alter_table(table_name, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(f'ix_{table_name}_street_key'))
            batch_op.drop_column('street_key')
