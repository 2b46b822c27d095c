"""audit sequencer: requests record into audit_pending; the worker seals into audit_entries

Requests only INSERT into audit_pending; the sequencer chains those entries onto audit_entries
and notes when (sealed_at, outside the hash; null for the entries sealed before). Code one
version back still appends to audit_entries directly through the head, which the sequencer
continues from. Both are plain ALTER TABLE ADD/DROP COLUMN on SQLite too: rebuilding
audit_entries would drop its append-only triggers.

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: 8d79af151976
Revises: 22f7308a52cd
Create Date: 2026-12-06 14:16:19.108095

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '8d79af151976'
down_revision = '22f7308a52cd'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('audit_pending',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('resource_type', sa.String(length=30), nullable=False),
    sa.Column('resource_id', sa.String(length=36), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_pending'))
    )
    op.add_column('audit_entries', sa.Column('sealed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.execute('ALTER TABLE audit_entries DROP COLUMN sealed_at')
    op.drop_table('audit_pending')
