"""events.checkin_opens_at / checkin_closes_at: the check-in window staff set

Revision ID: checkin_window
Revises: registration_attendee
Create Date: 2026-12-04 02:20:00

Both NULL means the default window (00:00 JST the day before the first day to 23:59 JST the day
after the last day), computed in services/checkin.py, so existing events need no data change.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'checkin_window'
down_revision = 'registration_attendee'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('checkin_opens_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('checkin_closes_at', sa.DateTime(), nullable=True))
        batch_op.create_check_constraint(
            op.f('ck_events_checkin_window_order'),
            'checkin_opens_at IS NULL OR checkin_closes_at IS NULL OR checkin_closes_at > checkin_opens_at')


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_events_checkin_window_order'), type_='check')
        batch_op.drop_column('checkin_closes_at')
        batch_op.drop_column('checkin_opens_at')
