"""Webhooks: endpoints, the event outbox, deliveries; the right integrations.admin (given to
the Administrator role, which holds every right)

Revision ID: 0009_webhooks
Revises: 0008_usage_right
Create Date: 2026-12-04 19:10:00

"""
import sqlalchemy as sa
from alembic import op

import portal.models.base

# revision identifiers, used by Alembic.
revision = '0009_webhooks'
down_revision = '0008_usage_right'
branch_labels = None
depends_on = None

RIGHT = 'integrations.admin'
RIGHT_DESCRIPTION = 'Manage webhook endpoints and see their deliveries'


def _timestamps():
    return [
        sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', portal.models.base.UTCDateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    ]


def upgrade():
    op.create_table(
        'webhook_endpoint',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=500), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=False),
        sa.Column('event_types', sa.JSON(), nullable=False),
        sa.Column('secret', sa.String(length=100), nullable=False),
        sa.Column('previous_secret', sa.String(length=100), nullable=True),
        sa.Column('previous_secret_until', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['created_by_id'], ['operator.id'],
                                name=op.f('fk_webhook_endpoint_created_by_id_operator'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoint')),
    )
    op.create_table(
        'webhook_event',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=60), nullable=False),
        sa.Column('subject', sa.String(length=80), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('dispatched_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_event')),
    )
    op.create_index('ix_webhook_event_dispatch', 'webhook_event', ['dispatched_at', 'id'], unique=False)
    op.create_index('ix_webhook_event_subject', 'webhook_event', ['subject', 'id'], unique=False)
    op.create_table(
        'webhook_delivery',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('subject', sa.String(length=80), nullable=False),
        sa.Column('state', sa.Enum('pending', 'delivered', 'failed', name='webhook_delivery_state',
                                   native_enum=False, create_constraint=True, length=13), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('give_up_at', portal.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_attempt_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=300), nullable=False),
        sa.Column('delivered_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoint.id'],
                                name=op.f('fk_webhook_delivery_endpoint_id_webhook_endpoint'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_event.id'],
                                name=op.f('fk_webhook_delivery_event_id_webhook_event'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_delivery')),
        sa.UniqueConstraint('event_id', 'endpoint_id', name=op.f('uq_webhook_delivery_event_id_endpoint_id')),
    )
    op.create_index('ix_webhook_delivery_due', 'webhook_delivery', ['state', 'next_attempt_at'], unique=False)
    op.create_index('ix_webhook_delivery_order', 'webhook_delivery', ['endpoint_id', 'subject', 'state', 'event_id'],
                    unique=False)
    op.create_index('ix_webhook_delivery_endpoint', 'webhook_delivery', ['endpoint_id', 'id'], unique=False)

    # Data: the new right exists, and the Administrator role (every right, see
    # portal.domain.accounts.ensure_admin_role) holds it. Nothing happens on an empty database.
    right = sa.table('right', sa.column('id', sa.Integer), sa.column('code', sa.String),
                     sa.column('description', sa.String))
    role = sa.table('role', sa.column('id', sa.Integer), sa.column('name', sa.String))
    role_right = sa.table('role_right', sa.column('role_id', sa.Integer), sa.column('right_id', sa.Integer))
    conn = op.get_bind()
    right_id = conn.scalar(sa.select(right.c.id).where(right.c.code == RIGHT))
    if right_id is None:
        conn.execute(sa.insert(right).values(code=RIGHT, description=RIGHT_DESCRIPTION))
        right_id = conn.scalar(sa.select(right.c.id).where(right.c.code == RIGHT))
    admin_id = conn.scalar(sa.select(role.c.id).where(role.c.name == 'Administrator'))
    if admin_id is not None and conn.scalar(sa.select(sa.func.count()).select_from(role_right).where(
            role_right.c.role_id == admin_id, role_right.c.right_id == right_id)) == 0:
        conn.execute(sa.insert(role_right).values(role_id=admin_id, right_id=right_id))


def downgrade():
    right = sa.table('right', sa.column('id', sa.Integer), sa.column('code', sa.String))
    role_right = sa.table('role_right', sa.column('role_id', sa.Integer), sa.column('right_id', sa.Integer))
    conn = op.get_bind()
    right_id = conn.scalar(sa.select(right.c.id).where(right.c.code == RIGHT))
    if right_id is not None:
        conn.execute(sa.delete(role_right).where(role_right.c.right_id == right_id))
        conn.execute(sa.delete(right).where(right.c.id == right_id))
    op.drop_index('ix_webhook_delivery_endpoint', table_name='webhook_delivery')
    op.drop_index('ix_webhook_delivery_order', table_name='webhook_delivery')
    op.drop_index('ix_webhook_delivery_due', table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
    op.drop_index('ix_webhook_event_subject', table_name='webhook_event')
    op.drop_index('ix_webhook_event_dispatch', table_name='webhook_event')
    op.drop_table('webhook_event')
    op.drop_table('webhook_endpoint')
