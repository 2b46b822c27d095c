"""audit log

The hash-chained audit log (audit_entries) and its head row (audit_head). Triggers make
audit_entries append-only: the database refuses UPDATE, DELETE (and TRUNCATE on PostgreSQL).
SQLite drops a table's triggers with it: a later migration that rebuilds audit_entries with
batch_alter_table must create them again (see _create_triggers).

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: ee9aa367e4a3
Revises: a81cc7c6414b
Create Date: 2026-11-22 11:08:46.254116

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ee9aa367e4a3'
down_revision = 'a81cc7c6414b'
branch_labels = None
depends_on = None


APPEND_ONLY = "audit_entries is append-only"

POSTGRESQL_UP = (
    f"""
    CREATE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{APPEND_ONLY}' USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    """
    CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_entries_append_only()
    """,
    """
    CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()
    """,
)
POSTGRESQL_DOWN = (
    "DROP TRIGGER IF EXISTS audit_entries_no_truncate ON audit_entries",
    "DROP TRIGGER IF EXISTS audit_entries_append_only ON audit_entries",
    "DROP FUNCTION IF EXISTS audit_entries_append_only()",
)
SQLITE_UP = (
    f"""
    CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END
    """,
    f"""
    CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
    BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END
    """,
)
SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS audit_entries_no_update",
    "DROP TRIGGER IF EXISTS audit_entries_no_delete",
)


def _run(statements):
    for statement in statements:
        op.execute(statement)


def _create_triggers():
    dialect = op.get_bind().dialect.name
    _run({"postgresql": POSTGRESQL_UP, "sqlite": SQLITE_UP}.get(dialect, ()))


def _drop_triggers():
    dialect = op.get_bind().dialect.name
    _run({"postgresql": POSTGRESQL_DOWN, "sqlite": SQLITE_DOWN}.get(dialect, ()))


def upgrade():
    op.create_table('audit_entries',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('organization_id', sa.String(length=36), nullable=True),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('resource_type', sa.String(length=30), nullable=False),
    sa.Column('resource_id', sa.String(length=36), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_entries'))
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index('ix_audit_entries_actor', ['actor', 'seq'], unique=False)
        batch_op.create_index('ix_audit_entries_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_entries_resource', ['resource_type', 'resource_id', 'seq'], unique=False)

    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.CheckConstraint('id = 1', name=op.f('ck_audit_head_single_row')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )

    _create_triggers()


def downgrade():
    _drop_triggers()
    op.drop_table('audit_head')
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_entries_resource')
        batch_op.drop_index('ix_audit_entries_at')
        batch_op.drop_index('ix_audit_entries_actor')

    op.drop_table('audit_entries')
