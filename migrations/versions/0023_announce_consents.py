"""announcement_consents, outbox.headers: opt-in announcements (特定電子メール法)

Revision ID: announce_consents
Revises: staffmail_staff_mails
Create Date: 2026-12-04 19:20:00

A new table, a nullable column and an index on outbox (to_addr, kind): safe while older app servers run (they neither read nor write
them). Nobody is opted in by the migration: consent is only ever given by the person.
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = 'announce_consents'
down_revision = 'staffmail_staff_mails'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'announcement_consents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('consent_version', sa.String(length=32), nullable=False),
        sa.Column('consented_at', sa.DateTime(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('registration_id', sa.Integer(), nullable=True),
        sa.Column('unsubscribe_token', sa.String(length=64), nullable=False),
        sa.Column('withdrawn_at', sa.DateTime(), nullable=True),
        sa.Column('withdrawn_via', sa.String(length=16), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("status IN ('active', 'withdrawn')", name=op.f('ck_announcement_consents_status_valid')),
        sa.CheckConstraint("source IN ('signup', 'mypage')", name=op.f('ck_announcement_consents_source_valid')),
        sa.CheckConstraint("withdrawn_via IN ('', 'link', 'one_click', 'mypage')",
                           name=op.f('ck_announcement_consents_withdrawn_via_valid')),
        sa.CheckConstraint("status != 'withdrawn' OR withdrawn_at IS NOT NULL",
                           name=op.f('ck_announcement_consents_withdrawn_has_time')),
        sa.CheckConstraint("consent_version != ''", name=op.f('ck_announcement_consents_version_given')),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_announcement_consents_person_id_people'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                                name=op.f('fk_announcement_consents_registration_id_registrations'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_announcement_consents')),
        sa.UniqueConstraint('person_id', name=op.f('uq_announcement_consents_person_id')),
        sa.UniqueConstraint('unsubscribe_token', name=op.f('uq_announcement_consents_unsubscribe_token')),
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('headers', sa.JSON(), nullable=True))
        batch_op.create_index('ix_outbox_to_addr_kind', ['to_addr', 'kind'], unique=False)


def downgrade():
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_to_addr_kind')
        batch_op.drop_column('headers')
    op.drop_table('announcement_consents')
