"""events.reminders and reminder_sends: reminder mails per event, each queued once

Revision ID: reminders_reminder_mails
Revises: event_previous_start
Create Date: 2026-12-04 19:10:00

NULL keeps every existing event on its kind's reminder defaults (services/reminders.py). The first
pass after deploying sends only reminders due from then on (one per registration, the latest due),
so events starting within a few days get at most one reminder, not a burst of late ones.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'reminders_reminder_mails'
down_revision = 'event_previous_start'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reminders', sa.JSON(), nullable=True))
    op.create_table('reminder_sends',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('armed_for', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                            name=op.f('fk_reminder_sends_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder_sends')),
    sa.UniqueConstraint('registration_id', 'code', 'armed_for', name='uq_reminder_sends_once')
    )


def downgrade():
    op.drop_table('reminder_sends')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('reminders')
