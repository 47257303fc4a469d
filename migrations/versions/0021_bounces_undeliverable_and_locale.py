"""undeliverable_addresses; registrations.locale

Revision ID: bounces_undeliverable_locale
Revises: reminders_reminder_mails
Create Date: 2026-12-04 19:10:00

undeliverable_addresses: addresses refused permanently (5xx at RCPT); no mail is attempted to them
until staff clear the mark. registrations.locale: the language the participant signed up in ('ja'
or 'en'); existing rows get 'ja' from the server default, so older app servers keep inserting.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'bounces_undeliverable_locale'
down_revision = 'reminders_reminder_mails'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'undeliverable_addresses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('first_failed_at', sa.DateTime(), nullable=False),
        sa.Column('last_failed_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint('email = lower(email)', name=op.f('ck_undeliverable_addresses_email_lower')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_undeliverable_addresses')),
        sa.UniqueConstraint('email', name=op.f('uq_undeliverable_addresses_email')),
    )
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=5), server_default='ja', nullable=False))
        batch_op.create_check_constraint(op.f('ck_registrations_locale_valid'), "locale IN ('ja', 'en')")


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_registrations_locale_valid'), type_='check')
        batch_op.drop_column('locale')
    op.drop_table('undeliverable_addresses')
