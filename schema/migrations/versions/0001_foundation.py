"""Foundation: site, meters, accounts, ledger, commands, operators, audit log, readings.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('tenant_name', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_accounts_status_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('number', name=op.f('uq_accounts_number'))
    )
    op.create_table('buildings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_buildings')),
    sa.UniqueConstraint('code', name=op.f('uq_buildings_code'))
    )
    op.create_table('gateways',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('transport', sa.String(length=16), nullable=False),
    sa.Column('timeout_s', sa.BigInteger(), nullable=False),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('last_contact_at', sa.DateTime(), nullable=True),
    sa.Column('lost_since', sa.DateTime(), nullable=True),
    sa.CheckConstraint("transport IN ('tcp', 'rtu-over-tcp', 'serial')", name=op.f('ck_gateways_transport_kind')),
    sa.CheckConstraint('port BETWEEN 1 AND 65535', name=op.f('ck_gateways_port_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateways')),
    sa.UniqueConstraint('name', name=op.f('uq_gateways_name'))
    )
    op.create_table('operators',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operators')),
    sa.UniqueConstraint('username', name=op.f('uq_operators_username'))
    )
    op.create_table('ts_readings',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('power_kw', sa.BigInteger(), nullable=True),
    sa.Column('voltage_v', sa.BigInteger(), nullable=True),
    sa.Column('current_a', sa.BigInteger(), nullable=True),
    sa.Column('relay_closed', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('meter_id', 'at', name=op.f('pk_ts_readings'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_audit_log_operator_id_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('floors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('building_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['buildings.id'], name=op.f('fk_floors_building_id_buildings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_floors')),
    sa.UniqueConstraint('building_id', 'level', name=op.f('uq_floors_building_id'))
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('floor_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('area_m2', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['floor_id'], ['floors.id'], name=op.f('fk_units_floor_id_floors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('number', name=op.f('uq_units_number'))
    )
    op.create_table('meters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=64), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('gateway_id', sa.Integer(), nullable=False),
    sa.Column('bus_address', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=True),
    sa.Column('ct_ratio', sa.Integer(), nullable=False),
    sa.Column('price_per_kwh', sa.BigInteger(), nullable=True),
    sa.Column('power_protect', sa.Boolean(), nullable=False),
    sa.Column('relay', sa.String(length=8), nullable=False),
    sa.Column('last_reading_at', sa.DateTime(), nullable=True),
    sa.Column('last_energy_kwh', sa.BigInteger(), nullable=True),
    sa.Column('last_power_kw', sa.BigInteger(), nullable=True),
    sa.Column('lost_since', sa.DateTime(), nullable=True),
    sa.Column('billed_at', sa.DateTime(), nullable=True),
    sa.Column('billed_energy_kwh', sa.BigInteger(), nullable=True),
    sa.Column('charge_base_energy_kwh', sa.BigInteger(), nullable=True),
    sa.Column('charge_base_price_per_kwh', sa.BigInteger(), nullable=True),
    sa.Column('charged_since_base', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("relay IN ('closed', 'open', 'unknown')", name=op.f('ck_meters_relay_state')),
    sa.CheckConstraint('bus_address BETWEEN 1 AND 247', name=op.f('ck_meters_bus_address_range')),
    sa.ForeignKeyConstraint(['gateway_id'], ['gateways.id'], name=op.f('fk_meters_gateway_id_gateways')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_meters_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meters')),
    sa.UniqueConstraint('gateway_id', 'bus_address', name='one_meter_per_bus_address'),
    sa.UniqueConstraint('serial', name=op.f('uq_meters_serial'))
    )
    op.create_table('account_meters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('attached_at', sa.DateTime(), nullable=False),
    sa.Column('detached_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_meters_account_id_accounts')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_account_meters_meter_id_meters')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_meters'))
    )
    with op.batch_alter_table('account_meters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_meters_account_id'), ['account_id'], unique=False)
        batch_op.create_index('uq_account_meters_active_meter', ['meter_id'], unique=True, sqlite_where=sa.text('detached_at IS NULL'), postgresql_where=sa.text('detached_at IS NULL'))

    op.create_table('commands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('requested_by', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('completed_at', sa.DateTime(), nullable=True),
    sa.Column('result', sa.Text(), nullable=False),
    sa.CheckConstraint("kind IN ('trip', 'close', 'protect_on', 'protect_off', 'price', 'settings')", name=op.f('ck_commands_command_kind')),
    sa.CheckConstraint("state IN ('queued', 'sent', 'confirmed', 'failed', 'expired')", name=op.f('ck_commands_command_state')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_commands_meter_id_meters')),
    sa.ForeignKeyConstraint(['requested_by'], ['operators.id'], name=op.f('fk_commands_requested_by_operators')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commands'))
    )
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commands_meter_id'), ['meter_id'], unique=False)
        batch_op.create_index('ix_commands_state_id', ['state', 'id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('meter_id', sa.Integer(), nullable=True),
    sa.Column('energy_kwh', sa.BigInteger(), nullable=True),
    sa.Column('price_per_kwh', sa.BigInteger(), nullable=True),
    sa.Column('reference_id', sa.Integer(), nullable=True),
    sa.Column('payment_method', sa.String(length=16), nullable=True),
    sa.Column('receipt_no', sa.String(length=32), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('effective_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('charge', 'sale', 'refund', 'reversal', 'transfer')", name=op.f('ck_ledger_entries_entry_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ledger_entries_account_id_accounts')),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'], name=op.f('fk_ledger_entries_meter_id_meters')),
    sa.ForeignKeyConstraint(['operator_id'], ['operators.id'], name=op.f('fk_ledger_entries_operator_id_operators')),
    sa.ForeignKeyConstraint(['reference_id'], ['ledger_entries.id'], name=op.f('fk_ledger_entries_reference_id_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key')),
    sa.UniqueConstraint('receipt_no', name=op.f('uq_ledger_entries_receipt_no'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_account_id_id', ['account_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_account_id_id')

    op.drop_table('ledger_entries')
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_index('ix_commands_state_id')
        batch_op.drop_index(batch_op.f('ix_commands_meter_id'))

    op.drop_table('commands')
    with op.batch_alter_table('account_meters', schema=None) as batch_op:
        batch_op.drop_index('uq_account_meters_active_meter', sqlite_where=sa.text('detached_at IS NULL'), postgresql_where=sa.text('detached_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_account_meters_account_id'))

    op.drop_table('account_meters')
    op.drop_table('meters')
    op.drop_table('units')
    op.drop_table('floors')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    op.drop_table('ts_readings')
    op.drop_table('operators')
    op.drop_table('gateways')
    op.drop_table('buildings')
    op.drop_table('accounts')
