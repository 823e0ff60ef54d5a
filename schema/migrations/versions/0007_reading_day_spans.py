"""Each meter's first and last reading per site-local day (ts_day_spans), for energy reports.

Filled from what is stored by revision 0010, which also adds each day's energy.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ts_day_spans',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.Column('first_energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('last_at', sa.DateTime(), nullable=False),
    sa.Column('last_energy_kwh', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('meter_id', 'on_date', name=op.f('pk_ts_day_spans'))
    )


def downgrade() -> None:
    op.drop_table('ts_day_spans')
