"""Gateway bus timing (gap between requests, serial baud rate) and command payloads
(what a price or settings dispatch writes).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payload', sa.JSON(), nullable=True))

    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gap_ms', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('baudrate', sa.Integer(), nullable=False, server_default='9600'))



def downgrade() -> None:
    with op.batch_alter_table('gateways', schema=None) as batch_op:
        batch_op.drop_column('baudrate')
        batch_op.drop_column('gap_ms')

    with op.batch_alter_table('commands', schema=None) as batch_op:
        batch_op.drop_column('payload')

