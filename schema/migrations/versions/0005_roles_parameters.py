"""Editable roles (permission sets), the previous password and last activity of operators,
site parameters, and a meter's own overload threshold.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    roles = op.create_table('roles',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.Column('builtin', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_roles'))
    )
    # The built-in roles as they were in code until now; operators may edit them from here on.
    op.bulk_insert(roles, [
        {"name": "administrator", "builtin": True, "permissions": [
            "view", "sell", "refund", "reverse", "accounts", "control", "configure", "operators"]},
        {"name": "cashier", "builtin": True, "permissions": ["view", "sell", "refund", "accounts"]},
        {"name": "engineer", "builtin": True, "permissions": ["view", "control", "configure"]},
        {"name": "viewer", "builtin": True, "permissions": ["view"]},
    ])
    op.create_table('site_parameters',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('updated_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['updated_by'], ['operators.id'], name=op.f('fk_site_parameters_updated_by_operators')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_site_parameters'))
    )
    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overload_kw', sa.BigInteger(), nullable=True))

    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_password_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('password_changed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_operators_role_roles'), 'roles', ['role'], ['name'])



def downgrade() -> None:
    with op.batch_alter_table('operators', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_operators_role_roles'), type_='foreignkey')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('password_changed_at')
        batch_op.drop_column('previous_password_hash')

    with op.batch_alter_table('meters', schema=None) as batch_op:
        batch_op.drop_column('overload_kw')

    op.drop_table('site_parameters')
    op.drop_table('roles')
