"""Tariffs, meter billing positions, account details and alarm levels, receipts, closings,
meter replacements and alarms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('holidays',
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('on_date', name=op.f('pk_holidays'))
    )
    op.create_table('receipt_counters',
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('last_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('on_date', name=op.f('pk_receipt_counters'))
    )
    op.create_table('tariffs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('flat', 'tou', 'tiered', 'tou_tiered')", name=op.f('ck_tariffs_tariff_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariffs')),
    sa.UniqueConstraint('name', name=op.f('uq_tariffs_name'))
    )
    op.create_table('account_closings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('final_balance', sa.BigInteger(), nullable=False),
    sa.Column('refunded', sa.BigInteger(), nullable=False),
    sa.Column('debt', sa.BigInteger(), nullable=False),
    sa.Column('meters', sa.JSON(), nullable=False),
    sa.Column('receipt_no', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_closings_account_id_accounts')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_account_closings_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_closings')),
    sa.UniqueConstraint('account_id', name=op.f('uq_account_closings_account_id'))
    )
    op.create_table('tariff_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tariff_id', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.DateTime(), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['operators.id'], name=op.f('fk_tariff_versions_created_by_operators')),
    sa.ForeignKeyConstraint(['tariff_id'], ['tariffs.id'], name=op.f('fk_tariff_versions_tariff_id_tariffs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariff_versions')),
    sa.UniqueConstraint('tariff_id', 'effective_from', name='one_version_per_instant')
    )
    op.create_table('alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('raised_at', sa.DateTime(), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
    sa.Column('acknowledged_by', sa.Integer(), nullable=True),
    sa.Column('ack_note', sa.Text(), nullable=False),
    sa.Column('cleared_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_alarms_account_id_accounts')),
    sa.ForeignKeyConstraint(['acknowledged_by'], ['operators.id'], name=op.f('fk_alarms_acknowledged_by_operators')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_alarms_meter_id_meters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarms'))
    )
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.create_index('ix_alarms_open', ['kind', 'meter_id', 'cleared_at'], unique=False)

    op.create_table('meter_billing',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('billed_at', sa.DateTime(), nullable=False),
    sa.Column('billed_energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('billed_band_energy', sa.JSON(), nullable=True),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('period_energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('period_cost_exact', sa.BigInteger(), nullable=False),
    sa.Column('period_charged', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_meter_billing_meter_id_meters')),
    sa.PrimaryKeyConstraint('meter_id', name=op.f('pk_meter_billing'))
    )
    op.create_table('meter_replacements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('old_meter_id', sa.Integer(), nullable=False),
    sa.Column('new_meter_id', sa.Integer(), nullable=False),
    sa.Column('old_final_energy_kwh', sa.BigInteger(), nullable=True),
    sa.Column('value_transferred', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_meter_replacements_account_id_accounts')),
    sa.ForeignKeyConstraint(['new_meter_id'], ['meters.id'], name=op.f('fk_meter_replacements_new_meter_id_meters')),
    sa.ForeignKeyConstraint(['old_meter_id'], ['meters.id'], name=op.f('fk_meter_replacements_old_meter_id_meters')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_meter_replacements_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_replacements'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('id_number', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('notes', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('alarm_level', sa.String(length=8), nullable=False, server_default='normal'))
        batch_op.create_check_constraint(op.f('ck_accounts_alarm_level_kind'), "alarm_level IN ('normal', 'alarm1', 'alarm2', 'arrears')")
        batch_op.add_column(sa.Column('alarm1_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('alarm2_amount', sa.BigInteger(), nullable=True))
    op.execute("UPDATE accounts SET alarm_level = 'arrears' WHERE balance <= 0")

    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_account_id_kind_effective_at', ['account_id', 'kind', 'effective_at'], unique=False)
        batch_op.create_index('uq_ledger_entries_one_reversal', ['reference_id'], unique=True, sqlite_where=sa.text("kind = 'reversal'"), postgresql_where=sa.text("kind = 'reversal'"))

    # Carry each meter's last billed reading over; the tier period starts afresh ('' = unknown).
    op.execute(
        "INSERT INTO meter_billing (meter_id, billed_at, billed_energy_kwh, period, "
        "period_energy_kwh, period_cost_exact, period_charged) "
        "SELECT id, billed_at, billed_energy_kwh, '', 0, 0, 0 FROM meters "
        "WHERE billed_at IS NOT NULL AND billed_energy_kwh IS NOT NULL"
    )
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tariff_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('band_source', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('alarm1_amount', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('alarm2_amount', sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_meters_tariff_id_tariffs'), 'tariffs', ['tariff_id'], ['id'])
        batch_op.drop_column('charge_base_energy_kwh')
        batch_op.drop_column('charge_base_price_per_kwh')
        batch_op.drop_column('billed_at')
        batch_op.drop_column('billed_energy_kwh')
        batch_op.drop_column('charged_since_base')



def downgrade() -> None:
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('charged_since_base', sa.BIGINT(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('billed_energy_kwh', sa.BIGINT(), nullable=True))
        batch_op.add_column(sa.Column('billed_at', sa.DATETIME(), nullable=True))
        batch_op.add_column(sa.Column('charge_base_price_per_kwh', sa.BIGINT(), nullable=True))
        batch_op.add_column(sa.Column('charge_base_energy_kwh', sa.BIGINT(), nullable=True))
        batch_op.drop_constraint(batch_op.f('fk_meters_tariff_id_tariffs'), type_='foreignkey')
        batch_op.drop_column('alarm2_amount')
        batch_op.drop_column('alarm1_amount')
        batch_op.drop_column('band_source')
        batch_op.drop_column('tariff_id')

    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_ledger_entries_one_reversal', sqlite_where=sa.text("kind = 'reversal'"), postgresql_where=sa.text("kind = 'reversal'"))
        batch_op.drop_index('ix_ledger_entries_account_id_kind_effective_at')

    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_accounts_alarm_level_kind'), type_='check')
        batch_op.drop_column('alarm2_amount')
        batch_op.drop_column('alarm1_amount')
        batch_op.drop_column('alarm_level')
        batch_op.drop_column('notes')
        batch_op.drop_column('id_number')

    op.drop_table('meter_replacements')
    op.drop_table('meter_billing')
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index('ix_alarms_open')

    op.drop_table('alarms')
    op.drop_table('tariff_versions')
    op.drop_table('account_closings')
    op.drop_table('tariffs')
    op.drop_table('receipt_counters')
    op.drop_table('holidays')
