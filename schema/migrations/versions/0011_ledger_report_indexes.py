"""Ledger indexes for reports at 10,000 meters: entries by time, and an account's charges with
their amounts in the index (PostgreSQL).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_ledger_entries_effective_at', 'ledger_entries', ['effective_at'])
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_ledger_entries_account_id_kind_effective_at',
                      table_name='ledger_entries')
        op.create_index('ix_ledger_entries_account_id_kind_effective_at', 'ledger_entries',
                        ['account_id', 'kind', 'effective_at'], postgresql_include=['amount'])


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_ledger_entries_account_id_kind_effective_at',
                      table_name='ledger_entries')
        op.create_index('ix_ledger_entries_account_id_kind_effective_at', 'ledger_entries',
                        ['account_id', 'kind', 'effective_at'])
    op.drop_index('ix_ledger_entries_effective_at', table_name='ledger_entries')
