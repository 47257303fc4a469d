"""my_page_links: hashed, single-use sign-in links of マイページ

Revision ID: my_page_links
Revises: staff_session_security
Create Date: 2026-12-04 02:20:00

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'my_page_links'
down_revision = 'staff_session_security'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'my_page_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.Column('signed_out_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint('expires_at > created_at', name=op.f('ck_my_page_links_expires_after_creation')),
        sa.CheckConstraint('signed_out_at IS NULL OR used_at IS NOT NULL',
                           name=op.f('ck_my_page_links_signed_out_after_use')),
        sa.ForeignKeyConstraint(['person_id'], ['people.id'], name=op.f('fk_my_page_links_person_id_people'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_my_page_links')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_my_page_links_token_hash')),
    )
    with op.batch_alter_table('my_page_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_my_page_links_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_my_page_links_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('my_page_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_my_page_links_expires_at'))
        batch_op.drop_index(batch_op.f('ix_my_page_links_person_id'))
    op.drop_table('my_page_links')
