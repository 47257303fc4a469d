"""event_kinds: when an online seminar's join URL is shown; a fieldwork's 集合 and 解散 times

Revision ID: event_kinds
Revises: companions
Create Date: 2026-12-04 03:45:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'event_kinds'
down_revision = 'companions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('online_url_reveal_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('meeting_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('dismissal_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('dismissal_at')
        batch_op.drop_column('meeting_at')
        batch_op.drop_column('online_url_reveal_at')
