"""companions (同行者): events.max_companions and registrations.lead_registration_id

Revision ID: companions
Revises: idempotency_keys
Create Date: 2026-12-04 02:20:00

A sign-up may bring up to `max_companions` companions (0 = none, the default for every existing
event); each companion is a registration of its own whose `lead_registration_id` points at the
registration of the person who signed the group up. Existing registrations are all leads (NULL).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'companions'
down_revision = 'idempotency_keys'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_companions', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.alter_column('max_companions', server_default=None)  # the app always writes it
        batch_op.create_check_constraint(op.f('ck_events_max_companions_range'), 'max_companions BETWEEN 0 AND 10')
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lead_registration_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_registrations_lead_registration_id'), ['lead_registration_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_registrations_lead_registration_id_registrations'),
                                    'registrations', ['lead_registration_id'], ['id'])


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_registrations_lead_registration_id_registrations'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_registrations_lead_registration_id'))
        batch_op.drop_column('lead_registration_id')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_events_max_companions_range'), type_='check')
        batch_op.drop_column('max_companions')
