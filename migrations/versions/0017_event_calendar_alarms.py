"""events.calendar_alarms: calendar reminders chosen per event

Revision ID: event_calendar_alarms
Revises: question_important
Create Date: 2026-12-04 15:20:00

NULL keeps every existing event on its kind's defaults (fieldwork: the evening before and 2 hours
before 集合; online seminars: 1 day and 15 minutes before; others: 1 day and 2 hours before).
Adding a nullable column is safe while older app servers run.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'event_calendar_alarms'
down_revision = 'question_important'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar_alarms', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('calendar_alarms')
