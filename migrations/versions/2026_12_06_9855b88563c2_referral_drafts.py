"""referral drafts: a referral form saved before sending, encrypted, kept 30 days

A new table only: nothing existing is locked or rebuilt, and the code one version back
ignores it.

Write migrations that never lock a busy table for long and that the code one
version back can still run against (add first, remove a release later).

Revision ID: 9855b88563c2
Revises: 5e7a0c1d9b42
Create Date: 2026-12-06 14:50:12.406441

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '9855b88563c2'
down_revision = '5e7a0c1d9b42'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('referral_drafts',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('service_id', sa.String(length=36), nullable=False),
    sa.Column('step', sa.String(length=10), nullable=False),
    # one AES-GCM envelope per part (referral_hub/referrals/drafts.py)
    sa.Column('facts_data', sa.Text(), nullable=True),
    sa.Column('consent_data', sa.Text(), nullable=True),
    sa.Column('identity_data', sa.Text(), nullable=True),
    sa.Column('contact_data', sa.Text(), nullable=True),
    sa.Column('health_data', sa.Text(), nullable=True),
    sa.Column('case_history_data', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['service_id'], ['services.id'], name=op.f('fk_referral_drafts_service_id_services'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_referral_drafts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_referral_drafts'))
    )
    op.create_index('ix_referral_drafts_author', 'referral_drafts', ['user_id', 'created_at'], unique=False)


def downgrade():
    op.drop_index('ix_referral_drafts_author', table_name='referral_drafts')
    op.drop_table('referral_drafts')
