"""registrations.join_url_mailed_at: the join-URL mail went out at the reveal time

Revision ID: join_url_mailed
Revises: event_calendar_alarms
Create Date: 2026-12-04 19:10:00

People confirmed before an online seminar's join URL is revealed get one mail with the URL at the
reveal time; this column claims that mail (a conditional UPDATE), so two senders send it once.
Existing rows stay NULL: for seminars whose reveal time has already passed, the first pass mails
people confirmed before it (they have not had the URL by mail yet). Adding a nullable column is safe
while older app servers run.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'join_url_mailed'
down_revision = 'event_calendar_alarms'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('join_url_mailed_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('join_url_mailed_at')
