"""service coordinates index

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: 095c70ee4865
Revises: f047c7fca48f
Create Date: 2026-11-22 14:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '095c70ee4865'
down_revision = 'f047c7fca48f'
branch_labels = None
depends_on = None


def upgrade():
    # A search by distance looks inside a box of latitudes and longitudes first.
    # CONCURRENTLY on PostgreSQL: services stays writable while the index is built.
    with op.get_context().autocommit_block():
        op.create_index(
            'ix_services_coordinates',
            'services',
            ['latitude', 'longitude'],
            unique=False,
            postgresql_concurrently=True,
        )


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_services_coordinates', table_name='services', postgresql_concurrently=True)
