"""referral references and assignment

A referral's reference (MT-26-0042: the sender's short code, the year in Asia/Phnom_Penh, a
count per sender and year) and the receiving caseworker it is assigned to. Referrals sent
before get their references here, in the order they were sent; their senders get short codes
as the hub gives them (referrals/references.py), from this migration's own copy of the rule.

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: 3ed56a8f489c
Revises: 8d79af151976
Create Date: 2026-12-06 14:45:41.966512

"""
import re
from datetime import datetime, timedelta

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '3ed56a8f489c'
down_revision = '8d79af151976'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('short_code', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('reference_year', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reference_count', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_unique_constraint(batch_op.f('uq_organizations_short_code'), ['short_code'])

    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reference', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('assigned_to_user_id', sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f('ix_referrals_assigned_to_user_id'), ['assigned_to_user_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_referrals_reference'), ['reference'])
        batch_op.create_foreign_key(batch_op.f('fk_referrals_assigned_to_user_id_users'), 'users', ['assigned_to_user_id'], ['id'])

    _number_earlier_referrals()


def _code(name, alternate, taken):
    found = re.search(r"(?:^|\()([A-Z]{2,6})\)?$", (alternate or "").strip())
    initials = "".join(w[0] for w in re.findall(r"[A-Za-z][A-Za-z'\u2019-]*", name)).upper()
    base = found.group(1) if found else (initials[:6] if len(initials) >= 2 else "ORG")
    return next(c for c in (base, *(f"{base}{d}" for d in range(2, 10))) if c not in taken)


def _number_earlier_referrals():
    bind = op.get_bind()
    senders = bind.execute(sa.text(
        "SELECT DISTINCT o.id, o.name, o.alternate_name FROM organizations o"
        " JOIN referrals r ON r.sender_organization_id = o.id ORDER BY o.name"
    )).all()
    taken = set()
    for organization_id, name, alternate in senders:
        code = _code(name, alternate, taken)
        taken.add(code)
        rows = bind.execute(sa.text(
            "SELECT id, created_at FROM referrals WHERE sender_organization_id = :o"
            " ORDER BY created_at, id"
        ), {"o": organization_id}).all()
        year, count = None, 0
        for referral_id, created_at in rows:
            if isinstance(created_at, str):  # SQLite
                created_at = datetime.fromisoformat(created_at)
            local_year = (created_at + timedelta(hours=7)).year  # Asia/Phnom_Penh, no DST
            count = count + 1 if local_year == year else 1
            year = local_year
            bind.execute(
                sa.text("UPDATE referrals SET reference = :ref WHERE id = :id"),
                {"ref": f"{code}-{year % 100:02d}-{count:04d}", "id": referral_id},
            )
        bind.execute(
            sa.text("UPDATE organizations SET short_code = :c, reference_year = :y,"
                    " reference_count = :n WHERE id = :o"),
            {"c": code, "y": year, "n": count, "o": organization_id},
        )


def downgrade():
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_referrals_assigned_to_user_id_users'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_referrals_reference'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_referrals_assigned_to_user_id'))
        batch_op.drop_column('assigned_to_user_id')
        batch_op.drop_column('reference')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_organizations_short_code'), type_='unique')
        batch_op.drop_column('reference_count')
        batch_op.drop_column('reference_year')
        batch_op.drop_column('short_code')
