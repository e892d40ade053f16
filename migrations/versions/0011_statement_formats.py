"""statement_import.format: camt054, abo, mt940, fio_csv

Revision ID: 0011_statement_formats
Revises: 0010_customer_login_roles
Create Date: 2026-12-04 20:05:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011_statement_formats'
down_revision = '0010_customer_login_roles'
branch_labels = None
depends_on = None

OLD = ('csv', 'camt053')
NEW = (*OLD, 'camt054', 'abo', 'mt940', 'fio_csv')


def _type(values):
    return sa.Enum(*values, name='statement_format', native_enum=False, create_constraint=True, length=11)


def _set(values, previous):
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite cannot alter a CHECK constraint: the batch recreates the table with the new one.
        with op.batch_alter_table('statement_import', schema=None, recreate='always') as batch_op:
            batch_op.alter_column('format', existing_type=_type(previous), type_=_type(values),
                                  existing_nullable=False)
    else:
        op.drop_constraint(op.f('ck_statement_import_statement_format'), 'statement_import', type_='check')
        op.create_check_constraint(op.f('ck_statement_import_statement_format'), 'statement_import',
                                   "format IN (" + ", ".join(f"'{v}'" for v in values) + ")")


def upgrade():
    _set(NEW, OLD)


def downgrade():
    # Imports of the new formats keep their payments; only the label cannot be told apart.
    op.execute("UPDATE statement_import SET format = 'csv' WHERE format IN ('abo', 'mt940', 'fio_csv')")
    op.execute("UPDATE statement_import SET format = 'camt053' WHERE format = 'camt054'")
    _set(OLD, NEW)
