"""Selfcare logins: a role each (owner, billing, technical) and invitations (who invited
when, when the invitee chose a password). Existing logins become owners.

Revision ID: 0010_customer_login_roles
Revises: 0009_webhooks
Create Date: 2026-12-04 20:00:00

"""
import sqlalchemy as sa
from alembic import op

import portal.models.base

# revision identifiers, used by Alembic.
revision = '0010_customer_login_roles'
down_revision = '0009_webhooks'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customer_login', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'role', sa.Enum('owner', 'billing', 'technical', name='login_role', native_enum=False,
                            create_constraint=True, length=13),
            server_default='owner', nullable=False))
        batch_op.add_column(sa.Column('invited_at', portal.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('invited_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('activated_at', portal.models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('customer_login', schema=None) as batch_op:
        batch_op.drop_column('activated_at')
        batch_op.drop_column('invited_by')
        batch_op.drop_column('invited_at')
        batch_op.drop_constraint('login_role', type_='check')
        batch_op.drop_column('role')
