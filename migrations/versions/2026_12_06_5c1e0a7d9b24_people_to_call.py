"""people to call: a user's phone

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: 5c1e0a7d9b24
Revises: 3ed56a8f489c
Create Date: 2026-12-06 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '5c1e0a7d9b24'
down_revision = '3ed56a8f489c'
branch_labels = None
depends_on = None


def upgrade():
    # A nullable column without a default: PostgreSQL adds it without rewriting the table.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=60), nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('phone')
