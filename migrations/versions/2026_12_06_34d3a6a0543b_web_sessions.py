"""web sessions: a generation per user and the sessions signed out one by one

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: 34d3a6a0543b
Revises: 095c70ee4865
Create Date: 2026-12-06 08:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '34d3a6a0543b'
down_revision = '095c70ee4865'
branch_labels = None
depends_on = None


def upgrade():
    # Constant defaults: PostgreSQL adds these columns without rewriting the table.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('session_generation', sa.Integer(), server_default='0', nullable=False)
        )
        batch_op.add_column(
            sa.Column('ended_sessions', sa.JSON(), server_default='[]', nullable=False)
        )


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('ended_sessions')
        batch_op.drop_column('session_generation')
