"""questions.important (重要): answers highlighted at the door and on the 受付用 roster

Revision ID: question_important
Revises: event_kinds
Create Date: 2026-12-04 03:50:00

Existing questions are not important (false); the `dietary` key is treated as important by the
app whatever this flag says.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'question_important'
down_revision = 'event_kinds'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('important', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.alter_column('important', server_default=None)  # the app always writes it


def downgrade():
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_column('important')
