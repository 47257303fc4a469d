"""registrations carry their attendee (name, furigana, phone, …), copied from the person

Revision ID: registration_attendee
Revises: rate_limit_counters
Create Date: 2026-12-04 02:15:00

Until now one `people` row per address held the attendee's details and every sign-up overwrote it;
from here on each registration keeps the details it was made with. Upgrade copies the person's
current details onto every registration; downgrade drops the columns (the people rows were never
changed, so nothing is lost that the old code could show).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'registration_attendee'
down_revision = 'rate_limit_counters'
branch_labels = None
depends_on = None

_FIELDS = ("name", "furigana", "phone", "prefecture", "iwate_relation", "occupation", "skills")


def upgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('furigana', sa.String(length=100), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('phone', sa.String(length=40), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('prefecture', sa.String(length=16), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('iwate_relation', sa.String(length=16), nullable=False,
                                      server_default='none'))
        batch_op.add_column(sa.Column('occupation', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('skills', sa.Text(), nullable=False, server_default=''))
    # One statement on both databases: every registration takes its person's details as they are now.
    assignments = ", ".join(f"{f} = (SELECT people.{f} FROM people WHERE people.id = registrations.person_id)"
                            for f in _FIELDS)
    op.execute(f"UPDATE registrations SET {assignments}")
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        for field in _FIELDS:  # the app always writes them; the defaults were only for the copy
            batch_op.alter_column(field, server_default=None)
        batch_op.create_index(batch_op.f('ix_registrations_furigana'), ['furigana'], unique=False)
        batch_op.create_check_constraint(op.f('ck_registrations_iwate_relation_valid'), "iwate_relation IN ('origin', 'connected', 'none')")


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_registrations_iwate_relation_valid'), type_='check')
        batch_op.drop_index(batch_op.f('ix_registrations_furigana'))
        for field in reversed(_FIELDS):
            batch_op.drop_column(field)
