"""The tenant kiosk: an account's PIN, its lock after wrong PINs, and whether the tenant may
restore a tripped meter. Existing accounts have no PIN (no kiosk sign-in until one is set) and
no tenant control.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.add_column(sa.Column('pin_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('pin_failed_attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('pin_locked_until', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('tenant_control', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('accounts') as batch_op:
        batch_op.drop_column('tenant_control')
        batch_op.drop_column('pin_locked_until')
        batch_op.drop_column('pin_failed_attempts')
        batch_op.drop_column('pin_hash')
