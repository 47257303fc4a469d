"""people.calendar_token: secret key of the personal calendar feed

Revision ID: person_calendar_token
Revises: staff_audit_log
Create Date: 2026-11-26 20:30:00

"""
import secrets

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'person_calendar_token'
down_revision = 'staff_audit_log'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar_token', sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint('uq_people_calendar_token', ['calendar_token'])
    # People who signed up before this migration get a token too (anonymised ones stay NULL).
    conn = op.get_bind()
    ids = conn.execute(sa.text("SELECT id FROM people WHERE anonymised_at IS NULL")).scalars().all()
    for person_id in ids:
        conn.execute(sa.text("UPDATE people SET calendar_token = :t WHERE id = :id"),
                     {"t": secrets.token_urlsafe(24), "id": person_id})


def downgrade():
    with op.batch_alter_table('people', schema=None) as batch_op:
        batch_op.drop_constraint('uq_people_calendar_token', type_='unique')
        batch_op.drop_column('calendar_token')
