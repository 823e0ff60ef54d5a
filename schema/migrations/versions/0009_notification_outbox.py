"""The notification outbox (outbox_messages) and its delivery attempts; a tenant's language.

Existing accounts are told things in Chinese until an operator says otherwise.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('channel', sa.String(length=12), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=128), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('cleared_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("channel IN ('any', 'modem', 'http_sms', 'email')", name=op.f('ck_outbox_messages_channel_kind')),
    sa.CheckConstraint("kind IN ('alarm1', 'alarm2', 'arrears', 'trip', 'recharge', 'gateway_lost', 'command_failed')", name=op.f('ck_outbox_messages_message_kind')),
    sa.CheckConstraint("state IN ('queued', 'sending', 'sent', 'failed', 'cancelled')", name=op.f('ck_outbox_messages_message_state')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_outbox_messages_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages'))
    )
    with op.batch_alter_table('outbox_messages') as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_messages_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_outbox_messages_state_next_attempt_at', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index('uq_outbox_messages_open_key', ['dedupe_key', 'recipient'], unique=True, sqlite_where=sa.text('cleared_at IS NULL'), postgresql_where=sa.text('cleared_at IS NULL'))

    op.create_table('outbox_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=12), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('reply', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['outbox_messages.id'], name=op.f('fk_outbox_attempts_message_id_outbox_messages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_attempts'))
    )
    with op.batch_alter_table('outbox_attempts') as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_attempts_message_id'), ['message_id'], unique=False)
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=False,
                                      server_default='zh'))



def downgrade() -> None:
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.drop_column('language')

    with op.batch_alter_table('outbox_attempts') as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_attempts_message_id'))

    op.drop_table('outbox_attempts')
    with op.batch_alter_table('outbox_messages') as batch_op:
        batch_op.drop_index('uq_outbox_messages_open_key', sqlite_where=sa.text('cleared_at IS NULL'), postgresql_where=sa.text('cleared_at IS NULL'))
        batch_op.drop_index('ix_outbox_messages_state_next_attempt_at')
        batch_op.drop_index(batch_op.f('ix_outbox_messages_account_id'))

    op.drop_table('outbox_messages')
