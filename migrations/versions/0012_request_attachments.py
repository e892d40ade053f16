"""Request attachments (files on replies, both ways); the outbox's re-sends point at the
first send of their message (outbound_email.resent_from_id)

Revision ID: 0012_request_attachments
Revises: 0011_statement_formats
Create Date: 2026-12-04 20:15:00

"""
import sqlalchemy as sa
from alembic import op

import portal.models.base

# revision identifiers, used by Alembic.
revision = '0012_request_attachments'
down_revision = '0011_statement_formats'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'request_attachment',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('comment_id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('file_name', sa.String(length=200), nullable=False),
        sa.Column('content_type', sa.String(length=100), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('storage_key', sa.String(length=300), nullable=False),
        sa.Column('created_at', portal.models.base.UTCDateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.Column('updated_at', portal.models.base.UTCDateTime(timezone=True),
                  server_default=sa.text('(CURRENT_TIMESTAMP)'), nullable=False),
        sa.ForeignKeyConstraint(['comment_id'], ['request_comment.id'],
                                name=op.f('fk_request_attachment_comment_id_request_comment'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['request_id'], ['customer_request.id'],
                                name=op.f('fk_request_attachment_request_id_customer_request'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['customer_id'], ['customer.id'],
                                name=op.f('fk_request_attachment_customer_id_customer'), ondelete='RESTRICT'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_request_attachment')),
        sa.UniqueConstraint('storage_key', name=op.f('uq_request_attachment_storage_key')),
    )
    op.create_index(op.f('ix_request_attachment_comment_id'), 'request_attachment', ['comment_id'], unique=False)
    op.create_index(op.f('ix_request_attachment_request_id'), 'request_attachment', ['request_id'], unique=False)
    op.create_index(op.f('ix_request_attachment_customer_id'), 'request_attachment', ['customer_id'], unique=False)
    with op.batch_alter_table('outbound_email') as batch:
        batch.add_column(sa.Column('resent_from_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(batch.f('fk_outbound_email_resent_from_id_outbound_email'), 'outbound_email',
                                 ['resent_from_id'], ['id'], ondelete='SET NULL')
        batch.create_index(batch.f('ix_outbound_email_resent_from_id'), ['resent_from_id'], unique=False)


def downgrade():
    with op.batch_alter_table('outbound_email') as batch:
        batch.drop_index(batch.f('ix_outbound_email_resent_from_id'))
        batch.drop_constraint(batch.f('fk_outbound_email_resent_from_id_outbound_email'), type_='foreignkey')
        batch.drop_column('resent_from_id')
    op.drop_index(op.f('ix_request_attachment_customer_id'), table_name='request_attachment')
    op.drop_index(op.f('ix_request_attachment_request_id'), table_name='request_attachment')
    op.drop_index(op.f('ix_request_attachment_comment_id'), table_name='request_attachment')
    op.drop_table('request_attachment')
