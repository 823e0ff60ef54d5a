"""Each day span carries the day's energy, and the days are indexed by date (ts_day_spans).

The table is refilled from what is stored, as revision 0007 filled it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ts_day_spans') as batch:
        batch.add_column(sa.Column('energy_kwh', sa.BigInteger(), nullable=False,
                                   server_default='0'))
    with op.batch_alter_table('ts_day_spans') as batch:
        batch.alter_column('energy_kwh', server_default=None)
    op.create_index('ix_ts_day_spans_on_date', 'ts_day_spans',
                    ['on_date', 'meter_id', 'energy_kwh'])
    from collector.tsdb_sql import rebuild_day_spans
    from voltpay.settings import get_settings

    rebuild_day_spans(op.get_bind(), ZoneInfo(get_settings().site_tz))


def downgrade() -> None:
    op.drop_index('ix_ts_day_spans_on_date', table_name='ts_day_spans')
    with op.batch_alter_table('ts_day_spans') as batch:
        batch.drop_column('energy_kwh')
