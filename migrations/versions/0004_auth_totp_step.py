"""totp_last_step on customer_login and operator

The last TOTP time step accepted for a login: a code (or an earlier one) cannot be used a
second time within its window (RFC 6238 §5.2).

Revision ID: 0004_auth_totp_step
Revises: 0003_street_search
Create Date: 2026-12-03 08:00:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0004_auth_totp_step'
down_revision = '0003_street_search'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customer_login', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('operator', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
    with op.batch_alter_table('customer_login', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
