"""API tokens, kept answers for Idempotency-Key retries, and the audit entry's means (`via`)

Revision ID: 0007_api_tokens
Revises: 0006_reversal_payment_state
Create Date: 2026-12-04 08:20:00

"""
import sqlalchemy as sa
from alembic import op

import portal.models.base

# revision identifiers, used by Alembic.
revision = '0007_api_tokens'
down_revision = '0006_reversal_payment_state'
branch_labels = None
depends_on = None


def _timestamps():
    return [
        sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', portal.models.base.UTCDateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
    ]


def upgrade():
    op.create_table(
        'api_token',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('rights', sa.JSON(), nullable=False),
        sa.Column('location_ids', sa.JSON(), nullable=False),
        sa.Column('expires_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('last_used_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', portal.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['operator_id'], ['operator.id'], name=op.f('fk_api_token_operator_id_operator'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['operator.id'],
                                name=op.f('fk_api_token_created_by_id_operator'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_token')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_token_token_hash')),
    )
    op.create_index(op.f('ix_api_token_operator_id'), 'api_token', ['operator_id'], unique=False)
    op.create_table(
        'idempotent_answer',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=True),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('headers', sa.JSON(), nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(['token_id'], ['api_token.id'], name=op.f('fk_idempotent_answer_token_id_api_token'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotent_answer')),
        sa.UniqueConstraint('token_id', 'key', name=op.f('uq_idempotent_answer_token_id_key')),
    )
    op.create_index('ix_idempotent_answer_created', 'idempotent_answer', ['created_at'], unique=False)
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('via', sa.String(length=120), nullable=True))


def downgrade():
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('via')
    op.drop_index('ix_idempotent_answer_created', table_name='idempotent_answer')
    op.drop_table('idempotent_answer')
    op.drop_index(op.f('ix_api_token_operator_id'), table_name='api_token')
    op.drop_table('api_token')
