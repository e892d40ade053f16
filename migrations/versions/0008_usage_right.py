"""The right to send usage readings (usage.write), given to the Administrator role

Revision ID: 0008_usage_right
Revises: 0007_api_tokens
Create Date: 2026-12-04 19:30:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008_usage_right'
down_revision = '0007_api_tokens'
branch_labels = None
depends_on = None

CODE = 'usage.write'
DESCRIPTION = 'Send usage readings (meters and collectors, through the API)'


def upgrade():
    bind = op.get_bind()
    if bind.execute(sa.text('SELECT 1 FROM "right" WHERE code = :code'), {'code': CODE}).first() is None:
        bind.execute(sa.text('INSERT INTO "right" (code, description) VALUES (:code, :description)'),
                     {'code': CODE, 'description': DESCRIPTION})
    # The Administrator role holds every right (portal.domain.accounts.ensure_admin_role).
    bind.execute(sa.text('INSERT INTO role_right (role_id, right_id) '
                         'SELECT role.id, "right".id FROM role, "right" '
                         'WHERE role.name = \'Administrator\' AND "right".code = :code '
                         'AND NOT EXISTS (SELECT 1 FROM role_right rr WHERE rr.role_id = role.id '
                         'AND rr.right_id = "right".id)'), {'code': CODE})


def downgrade():
    bind = op.get_bind()
    bind.execute(sa.text('DELETE FROM role_right WHERE right_id IN (SELECT id FROM "right" WHERE code = :code)'),
                 {'code': CODE})
    bind.execute(sa.text('DELETE FROM "right" WHERE code = :code'), {'code': CODE})
