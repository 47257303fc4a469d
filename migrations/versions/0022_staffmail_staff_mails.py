"""staff_mails: staff mail composed, previewed, tested, then sent at once or scheduled (issue 16 item 2)

Revision ID: staffmail_staff_mails
Revises: bounces_undeliverable_locale
Create Date: 2026-12-04 19:06:01

A new table only: safe while older app servers run.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'staffmail_staff_mails'
down_revision = 'bounces_undeliverable_locale'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('staff_mails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('audience', sa.String(length=16), nullable=False),
    sa.Column('attachments', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.Column('recipient_count', sa.Integer(), nullable=False),
    sa.CheckConstraint("audience IN ('confirmed', 'waitlisted', 'all', 'checked_in')", name=op.f('ck_staff_mails_audience_valid')),
    sa.CheckConstraint("status != 'scheduled' OR scheduled_at IS NOT NULL", name=op.f('ck_staff_mails_scheduled_has_time')),
    sa.CheckConstraint("status != 'sent' OR sent_at IS NOT NULL", name=op.f('ck_staff_mails_sent_has_time')),
    sa.CheckConstraint("status IN ('draft', 'scheduled', 'sent', 'cancelled')", name=op.f('ck_staff_mails_status_valid')),
    sa.CheckConstraint('recipient_count >= 0', name=op.f('ck_staff_mails_recipient_count_valid')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_staff_mails_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_staff_mails_event_id_events'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_mails'))
    )
    with op.batch_alter_table('staff_mails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_mails_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_staff_mails_status_scheduled', ['status', 'scheduled_at'], unique=False)



def downgrade():
    with op.batch_alter_table('staff_mails', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_mails_status_scheduled')
        batch_op.drop_index(batch_op.f('ix_staff_mails_event_id'))

    op.drop_table('staff_mails')
