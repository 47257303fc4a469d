"""checkins: onsite check-in per registration and event day

Revision ID: 0004_checkins
Revises: 0001
Create Date: 2026-11-26 20:07:28.657333

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_checkins'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('checkins',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('event_day_id', sa.Integer(), nullable=False),
    sa.Column('checked_in_at', sa.DateTime(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('by_user_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('undone_at', sa.DateTime(), nullable=True),
    sa.Column('undone_by_id', sa.Integer(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("source IN ('scan', 'manual', 'walkin', 'offline')", name=op.f('ck_checkins_source_valid')),
    sa.CheckConstraint('undone_at IS NULL OR undone_by_id IS NOT NULL OR duplicate_of_id IS NOT NULL', name=op.f('ck_checkins_undo_has_actor')),
    sa.ForeignKeyConstraint(['by_user_id'], ['users.id'], name=op.f('fk_checkins_by_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['checkins.id'], name=op.f('fk_checkins_duplicate_of_id_checkins'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_day_id'], ['event_days.id'], name=op.f('fk_checkins_event_day_id_event_days'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_checkins_registration_id_registrations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['undone_by_id'], ['users.id'], name=op.f('fk_checkins_undone_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checkins')),
    sa.UniqueConstraint('nonce', name=op.f('uq_checkins_nonce'))
    )
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.create_index('ix_checkins_day_active', ['event_day_id', 'undone_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_checkins_registration_id'), ['registration_id'], unique=False)
        batch_op.create_index('uq_checkins_active_registration_day', ['registration_id', 'event_day_id'], unique=True, sqlite_where=sa.text('undone_at IS NULL AND duplicate_of_id IS NULL'), postgresql_where=sa.text('undone_at IS NULL AND duplicate_of_id IS NULL'))



def downgrade():
    with op.batch_alter_table('checkins', schema=None) as batch_op:
        batch_op.drop_index('uq_checkins_active_registration_day', sqlite_where=sa.text('undone_at IS NULL AND duplicate_of_id IS NULL'), postgresql_where=sa.text('undone_at IS NULL AND duplicate_of_id IS NULL'))
        batch_op.drop_index(batch_op.f('ix_checkins_registration_id'))
        batch_op.drop_index('ix_checkins_day_active')

    op.drop_table('checkins')
