"""Archived readings: one row per meter per site-local day (ts_daily).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ts_daily',
    sa.Column('meter_id', sa.Integer(), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.Column('last_at', sa.DateTime(), nullable=False),
    sa.Column('first_energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('last_energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('energy_kwh', sa.BigInteger(), nullable=False),
    sa.Column('readings', sa.Integer(), nullable=False),
    sa.Column('max_power_kw', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('meter_id', 'on_date', name=op.f('pk_ts_daily'))
    )


def downgrade() -> None:
    op.drop_table('ts_daily')
