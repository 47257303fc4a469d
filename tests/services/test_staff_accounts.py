"""Staff account management: roles, deactivation, password change; the last admin is protected."""

from __future__ import annotations

import pytest

from eventapp.auth import verify_password
from eventapp.extensions import db
from eventapp.models import AuditEntry
from eventapp.services import accounts
from eventapp.services.errors import DomainError, ValidationFailed
from tests.staff_support import PASSWORD, make_user


def test_role_change_and_last_admin_protection(ctx):
    admin = make_user("admin")
    staff = make_user("staff")
    accounts.set_role(staff.id, "checkin", acting=admin)
    assert staff.role == "checkin"
    with pytest.raises(DomainError) as exc:
        accounts.set_role(admin.id, "staff", acting=admin)
    assert exc.value.code == "last_admin"
    with pytest.raises(ValidationFailed):
        accounts.set_role(staff.id, "root", acting=admin)
    db.session.commit()
    assert db.session.query(AuditEntry).filter_by(action="role").one().actor == admin.email


def test_deactivate_blocks_self_and_revokes_tokens(ctx):
    admin = make_user("admin")
    staff = make_user("staff")
    accounts.create_token(staff.email)
    with pytest.raises(DomainError):
        accounts.set_active(admin.id, False, acting=admin)
    accounts.set_active(staff.id, False, acting=admin)
    db.session.commit()
    assert staff.active is False and staff.tokens == []
    accounts.set_active(staff.id, True, acting=admin)
    assert staff.active is True


def test_change_password(ctx):
    user = make_user("checkin")
    with pytest.raises(ValidationFailed) as exc:
        accounts.change_password(user, "wrong", "short", "short")
    assert set(exc.value.fields) == {"current_password", "new_password"}
    with pytest.raises(ValidationFailed) as exc:
        accounts.change_password(user, PASSWORD, "a-new-password-1", "a-new-password-2")
    assert "一致しません" in exc.value.fields["confirm_password"]
    accounts.change_password(user, PASSWORD, "a-new-password-1", "a-new-password-1")
    assert verify_password(user, "a-new-password-1") and not verify_password(user, PASSWORD)
    assert user.password_hash.startswith("scrypt:")
