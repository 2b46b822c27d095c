"""directory in khmer: names and descriptions of organisations and services in Khmer

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: ad2d12c45a35
Revises: 9855b88563c2
Create Date: 2026-12-06 15:05:49.784528

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ad2d12c45a35'
down_revision = '9855b88563c2'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, no default: PostgreSQL adds these columns without rewriting the tables.
    for table in ('organizations', 'services'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('name_km', sa.String(length=200), nullable=True))
            batch_op.add_column(sa.Column('description_km', sa.Text(), nullable=True))


def downgrade():
    for table in ('services', 'organizations'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('description_km')
            batch_op.drop_column('name_km')
