"""English side: English event texts, an English privacy notice, the consent's language

Revision ID: english_texts
Revises: scalepeople_search_keys
Create Date: 2026-12-04 19:45:00

events.title_en/summary_en/description_en and privacy_notices.purpose_en/body_en/contact_en are
optional English texts ('' = none: English mode shows the Japanese one). registrations.consent_language
says which text of the notice version in consent_version was shown ('ja' for every existing row:
only Japanese existed). Adding NOT NULL columns with a server default is safe while older app
servers run (they do not name them in their INSERTs).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'english_texts'
down_revision = 'scalepeople_search_keys'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('title_en', sa.String(length=300), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('summary_en', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('description_en', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('privacy_notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('purpose_en', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('body_en', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('contact_en', sa.Text(), nullable=False, server_default=''))
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_language', sa.String(length=2), nullable=False,
                                      server_default='ja'))
        batch_op.create_check_constraint(op.f('ck_registrations_consent_language_valid'), "consent_language IN ('ja', 'en')")


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_registrations_consent_language_valid'), type_='check')
        batch_op.drop_column('consent_language')
    with op.batch_alter_table('privacy_notices', schema=None) as batch_op:
        batch_op.drop_column('contact_en')
        batch_op.drop_column('body_en')
        batch_op.drop_column('purpose_en')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('description_en')
        batch_op.drop_column('summary_en')
        batch_op.drop_column('title_en')
