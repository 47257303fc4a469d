"""lottery: events.allocation and the draw's columns; registrations 'applied'/'not_selected', lottery_priority

Revision ID: lottery_allocation
Revises: english_texts
Create Date: 2026-12-04 19:50:00

events.allocation ('first_come' | 'lottery', existing rows 'first_come' from the server default),
lottery_draw_at (required for lottery events), lottery_drawn_at, lottery_seed (hex), lottery_losers
('waitlist' | 'not_selected') and lottery_record (JSON: the draw's inputs and order). The registrations'
status constraint gains 'applied' and 'not_selected' (recreated; on SQLite the batch copies the table).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'lottery_allocation'
down_revision = 'english_texts'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('confirmed', 'waitlisted', 'cancelled')"
NEW_STATUSES = "status IN ('confirmed', 'waitlisted', 'cancelled', 'applied', 'not_selected')"


def upgrade():
    # downtime: none; drop_constraint only recreates the status CHECK wider ('applied', 'not_selected'),
    # which the previous release never writes: it keeps working on the new schema.
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allocation', sa.String(length=16), server_default='first_come', nullable=False))
        batch_op.add_column(sa.Column('lottery_draw_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('lottery_drawn_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('lottery_seed', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('lottery_losers', sa.String(length=16), server_default='waitlist',
                                      nullable=False))
        batch_op.add_column(sa.Column('lottery_record', sa.JSON(), nullable=True))
        batch_op.create_check_constraint(op.f('ck_events_allocation_valid'), "allocation IN ('first_come', 'lottery')")
        batch_op.create_check_constraint(op.f('ck_events_lottery_losers_valid'),
                                         "lottery_losers IN ('waitlist', 'not_selected')")
        batch_op.create_check_constraint(op.f('ck_events_lottery_has_draw_time'),
                                         "allocation != 'lottery' OR lottery_draw_at IS NOT NULL")
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lottery_priority', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_constraint(op.f('ck_registrations_status_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_registrations_status_valid'), NEW_STATUSES)


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_registrations_status_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_registrations_status_valid'), OLD_STATUSES)
        batch_op.drop_column('lottery_priority')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_events_lottery_has_draw_time'), type_='check')
        batch_op.drop_constraint(op.f('ck_events_lottery_losers_valid'), type_='check')
        batch_op.drop_constraint(op.f('ck_events_allocation_valid'), type_='check')
        batch_op.drop_column('lottery_record')
        batch_op.drop_column('lottery_losers')
        batch_op.drop_column('lottery_seed')
        batch_op.drop_column('lottery_drawn_at')
        batch_op.drop_column('lottery_draw_at')
        batch_op.drop_column('allocation')
