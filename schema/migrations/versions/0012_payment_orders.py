"""Online payments: orders toward a payment provider, and every notification it posted.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('order_no', sa.String(length=64), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('verified', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("outcome IN ('credited', 'repeated', 'ignored', 'failed', 'refused')", name=op.f('ck_payment_notifications_outcome_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_notifications'))
    )
    with op.batch_alter_table('payment_notifications') as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_notifications_order_no'), ['order_no'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_notifications_received_at'), ['received_at'], unique=False)

    op.create_table('payment_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_no', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('trade_no', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('pay_url', sa.Text(), nullable=False),
    sa.Column('ledger_entry_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('paid_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("state IN ('created', 'paid', 'closed', 'failed', 'refunded')", name=op.f('ck_payment_orders_order_state')),
    sa.CheckConstraint('amount > 0 AND amount % 100 = 0', name=op.f('ck_payment_orders_amount_cents')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payment_orders_account_id_accounts')),
    sa.ForeignKeyConstraint(['ledger_entry_id'], ['ledger_entries.id'], name=op.f('fk_payment_orders_ledger_entry_id_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_orders')),
    sa.UniqueConstraint('order_no', name=op.f('uq_payment_orders_order_no')),
    sa.UniqueConstraint('provider', 'trade_no', name=op.f('uq_payment_orders_provider'))
    )
    with op.batch_alter_table('payment_orders') as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_orders_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_payment_orders_state_created_at', ['state', 'created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('payment_orders') as batch_op:
        batch_op.drop_index('ix_payment_orders_state_created_at')
        batch_op.drop_index(batch_op.f('ix_payment_orders_account_id'))

    op.drop_table('payment_orders')
    with op.batch_alter_table('payment_notifications') as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_notifications_received_at'))
        batch_op.drop_index(batch_op.f('ix_payment_notifications_order_no'))

    op.drop_table('payment_notifications')
