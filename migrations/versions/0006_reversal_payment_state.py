"""payment state `reversed`; reversed_on, reversed_by_reference, reversed_by_import_id on payment

A CAMT entry with RvslInd true and DBIT takes back an earlier credit: the payment it undoes
becomes `reversed` (its allocations removed), recording when, by which bank reference (so a
re-import reverses nothing twice) and by which statement import.

Revision ID: 0006_reversal_payment_state
Revises: 0005_reliability_job_lease
Create Date: 2026-12-03 08:45:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006_reversal_payment_state'
down_revision = '0005_reliability_job_lease'
branch_labels = None
depends_on = None

OLD_STATES = ('unmatched', 'partial', 'matched', 'overpaid')
NEW_STATES = (*OLD_STATES, 'reversed')


def _state_type(states):
    return sa.Enum(*states, name='payment_state', native_enum=False, create_constraint=True, length=13)


def _in(states) -> str:
    return "state IN (" + ", ".join(f"'{s}'" for s in states) + ")"


def _set_states(states, previous):
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite cannot alter a CHECK constraint: the batch recreates the table with the new one.
        with op.batch_alter_table('payment', schema=None, recreate='always') as batch_op:
            batch_op.alter_column('state', existing_type=_state_type(previous), type_=_state_type(states),
                                  existing_nullable=False)
    else:
        op.drop_constraint(op.f('ck_payment_payment_state'), 'payment', type_='check')
        op.create_check_constraint(op.f('ck_payment_payment_state'), 'payment', _in(states))


def upgrade():
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reversed_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('reversed_by_reference', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('reversed_by_import_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_payment_reversed_by_import_id_statement_import'),
                                    'statement_import', ['reversed_by_import_id'], ['id'], ondelete='RESTRICT')
    _set_states(NEW_STATES, OLD_STATES)


def downgrade():
    # A reversed payment cannot be told back into another state: it leaves the payment
    # unmatched with nothing allocated to it (staff decide again).
    op.execute("UPDATE payment SET state = 'unmatched', unallocated = amount WHERE state = 'reversed'")
    _set_states(OLD_STATES, NEW_STATES)
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payment_reversed_by_import_id_statement_import'), type_='foreignkey')
        batch_op.drop_column('reversed_by_import_id')
        batch_op.drop_column('reversed_by_reference')
        batch_op.drop_column('reversed_on')
