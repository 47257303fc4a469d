"""payments: fees paid, waived or refunded per registration, with the receipt (領収書) number

Revision ID: fees_payments
Revises: lottery_allocation
Create Date: 2026-12-04 20:00:00

A new table only: older app servers neither read nor write it.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'fees_payments'
down_revision = 'lottery_allocation'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('registration_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('method', sa.String(length=16), nullable=False),
        sa.Column('amount_yen', sa.Integer(), nullable=False),
        sa.Column('paid_at', sa.DateTime(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.Column('recorded_by_id', sa.Integer(), nullable=True),
        sa.Column('nonce', sa.String(length=64), nullable=False),
        sa.Column('note', sa.String(length=200), nullable=False),
        sa.Column('receipt_number', sa.String(length=20), nullable=True),
        sa.Column('receipt_name', sa.String(length=100), nullable=False),
        sa.Column('receipt_reissued_count', sa.Integer(), nullable=False),
        sa.CheckConstraint("kind IN ('payment', 'waiver', 'refund')", name=op.f('ck_payments_kind_valid')),
        sa.CheckConstraint("method IN ('cash', 'bank_transfer', 'other')", name=op.f('ck_payments_method_valid')),
        sa.CheckConstraint('amount_yen >= 0', name=op.f('ck_payments_amount_not_negative')),
        sa.CheckConstraint('receipt_reissued_count >= 0', name=op.f('ck_payments_reissued_not_negative')),
        sa.CheckConstraint("kind = 'payment' OR receipt_number IS NULL",
                           name=op.f('ck_payments_receipt_only_for_payment')),
        sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                                name=op.f('fk_payments_registration_id_registrations'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'],
                                name=op.f('fk_payments_recorded_by_id_users'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
        sa.UniqueConstraint('nonce', name=op.f('uq_payments_nonce')),
        sa.UniqueConstraint('receipt_number', name=op.f('uq_payments_receipt_number')),
    )
    op.create_index('ix_payments_registration_id', 'payments', ['registration_id', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_payments_registration_id', table_name='payments')
    op.drop_table('payments')
