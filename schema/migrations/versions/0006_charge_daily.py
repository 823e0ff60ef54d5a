"""Charges rolled up per meter, site-local day and tariff band (charge_daily).

Charges made before this revision were never split by band: they are carried over per meter and
local day under the band '' (one rate), so cost reports keep their totals.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections import defaultdict
from datetime import UTC
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ENERGY_UNITS = 10**4  # ledger amounts and energies: ScaledDecimal(4)
DAILY_UNITS = 10**10  # charge_daily: ScaledDecimal(10)


def upgrade() -> None:
    table = op.create_table('charge_daily',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('band', sa.String(length=12), nullable=False),
    sa.Column('energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('cost', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['meter_id'], ['meters.id'],
                            name=op.f('fk_charge_daily_meter_id_meters')),
    sa.PrimaryKeyConstraint('meter_id', 'on_date', 'band', name=op.f('pk_charge_daily'))
    )
    op.create_index('ix_charge_daily_on_date', 'charge_daily', ['on_date'])
    _carry_over(table)


def _carry_over(table: sa.Table) -> None:
    from voltpay.settings import get_settings

    tz = ZoneInfo(get_settings().site_tz)
    totals: dict[tuple[int, object], list[int]] = defaultdict(lambda: [0, 0])
    rows = op.get_bind().execute(sa.text(
        "SELECT meter_id, effective_at, energy_kwh, amount FROM ledger_entries "
        "WHERE kind = 'charge' AND meter_id IS NOT NULL"
    ).columns(effective_at=sa.DateTime()))
    for meter_id, at, energy, amount in rows:
        on_date = at.replace(tzinfo=UTC).astimezone(tz).date()
        total = totals[meter_id, on_date]
        total[0] += (energy or 0) * (DAILY_UNITS // ENERGY_UNITS)
        total[1] -= amount * (DAILY_UNITS // ENERGY_UNITS)
    if totals:
        op.bulk_insert(table, [
            {"meter_id": meter_id, "on_date": on_date, "band": "", "energy_kwh": energy,
             "cost": cost}
            for (meter_id, on_date), (energy, cost) in totals.items()
        ])


def downgrade() -> None:
    op.drop_index('ix_charge_daily_on_date', table_name='charge_daily')
    op.drop_table('charge_daily')
