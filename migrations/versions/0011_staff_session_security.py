"""staff session versions, TOTP two-factor with recovery codes, 出席コード lockout per registration

Revision ID: staff_session_security
Revises: checkin_window
Create Date: 2026-12-04 02:30:00

users.session_version is copied into the session at login and compared on every request (bumped at
logout, password/role change, deactivation); users.totp_* and recovery_codes hold the optional
two-factor login; attendance_code_attempts counts wrong 出席コード entries per registration and locks
the entry for a while after too many.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'staff_session_security'
down_revision = 'checkin_window'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('totp_enabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('totp_last_step', sa.Integer(), nullable=False, server_default='0'))

    op.create_table(
        'recovery_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_recovery_codes_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_codes')),
    )
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_codes_user_id'), ['user_id'], unique=False)

    op.create_table(
        'attendance_code_attempts',
        sa.Column('registration_id', sa.Integer(), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('locked_until', sa.DateTime(), nullable=True),
        sa.CheckConstraint('failures >= 0', name=op.f('ck_attendance_code_attempts_failures_valid')),
        sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'],
                                name=op.f('fk_attendance_code_attempts_registration_id_registrations'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('registration_id', name=op.f('pk_attendance_code_attempts')),
    )


def downgrade():
    op.drop_table('attendance_code_attempts')
    with op.batch_alter_table('recovery_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_codes_user_id'))
    op.drop_table('recovery_codes')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_last_step')
        batch_op.drop_column('totp_enabled_at')
        batch_op.drop_column('totp_secret')
        batch_op.drop_column('session_version')
