"""online_url_reveal: when an online seminar's join URL is shown to confirmed participants

Revision ID: online_url_reveal
Revises: companions
Create Date: 2026-12-04 03:45:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'online_url_reveal'
down_revision = 'companions'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('online_url_reveal_at', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('online_url_reveal_at')
