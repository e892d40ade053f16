"""job lease: worker_id, heartbeat_at, interrupted_at, resumed_by_id on job

A job whose worker died (kill -9, a lost machine) stayed "running" forever. The worker now
renews heartbeat_at while it works; a running job whose lease has expired is marked
interrupted (interrupted_at) and can be resumed by a new job (resumed_by_id).

Revision ID: 0005_reliability_job_lease
Revises: 0004_auth_totp_step
Create Date: 2026-12-03 08:00:00

"""
import sqlalchemy as sa
from alembic import op

import portal.models.base

# revision identifiers, used by Alembic.
revision = '0005_reliability_job_lease'
down_revision = '0004_auth_totp_step'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('heartbeat_at', portal.models.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('interrupted_at', portal.models.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('resumed_by_id', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('job', schema=None) as batch_op:
        batch_op.drop_column('resumed_by_id')
        batch_op.drop_column('interrupted_at')
        batch_op.drop_column('heartbeat_at')
        batch_op.drop_column('worker_id')
