"""events.previous_starts_at: when a published event was moved, its start before the move

Revision ID: event_previous_start
Revises: join_url_mailed
Create Date: 2026-12-04 19:20:00

Shown on the event page (日程変更) and in its schema.org data (EventRescheduled, previousStartDate).
NULL for every existing event (never moved as far as we know). A nullable column: safe while older app
servers run.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'event_previous_start'
down_revision = 'join_url_mailed'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('previous_starts_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('previous_starts_at')
