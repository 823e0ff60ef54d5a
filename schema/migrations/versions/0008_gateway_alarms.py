"""Alarms may name a gateway (a gateway lost contact).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alarms') as batch_op:
        batch_op.add_column(sa.Column('gateway_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f('fk_alarms_gateway_id_gateways'), 'gateways', ['gateway_id'], ['id']
        )


def downgrade() -> None:
    with op.batch_alter_table('alarms') as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_alarms_gateway_id_gateways'), type_='foreignkey')
        batch_op.drop_column('gateway_id')
