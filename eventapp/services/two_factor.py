"""Optional TOTP two-factor login for staff accounts (offered to admins), with single-use recovery codes.

Enrolment: `begin` stores a new secret (not yet in force), the account page shows it as a QR code and as
text, `confirm` checks a first code from the authenticator app, switches two-factor on and returns ten
recovery codes (shown once; only their SHA-256 is stored). Login then asks, after the password, for a
current code or one unused recovery code (`check`). `disable` needs the password and a code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from datetime import datetime

import pyotp

from ..auth import verify_password
from ..extensions import db
from ..models import RecoveryCode, User
from ..models.base import utcnow
from .errors import DomainError, ValidationFailed

ISSUER = "遠恋複業課 eventapp"
RECOVERY_CODE_COUNT = 10
# One 30-second step either side: a phone clock a little off still works.
VALID_WINDOW = 1
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
RECOVERY_CODE_LENGTH = 10  # 10 of 31 symbols: ~50 bits, enough for a code that is hashed and used once


def _normalise(code: str) -> str:
    # Codes are short: a long input is cut before any work is done on it.
    text = unicodedata.normalize("NFKC", (code or "")[:64]).lower()
    return "".join(ch for ch in text if ch.isalnum())


def _hash_code(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode("ascii", "ignore")).hexdigest()


def begin(user: User) -> str:
    """A new secret for enrolment (replaces an unconfirmed one); two-factor is not in force yet."""
    if user.totp_enabled:
        raise DomainError("two_factor_enabled", "二要素認証は既に有効です。設定し直す場合は先に無効にしてください。")
    user.totp_secret = pyotp.random_base32()
    db.session.flush()
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    """The otpauth:// URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=ISSUER)


def _check_totp(user: User, code: str, now: datetime) -> bool:
    digits = _normalise(code)
    if not user.totp_secret or len(digits) != 6 or not digits.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        # A step at or before the last accepted one was used already: no replay of a seen code.
        if step > user.totp_last_step and hmac.compare_digest(totp.generate_otp(step), digits):
            user.totp_last_step = step
            return True
    return False


def confirm(user: User, code: str, *, now: datetime | None = None) -> list[str]:
    """Switch two-factor on with a first code from the app; returns the recovery codes (shown once)."""
    from . import audit

    if user.totp_enabled:
        raise DomainError("two_factor_enabled", "二要素認証は既に有効です。")
    if not user.totp_secret:
        raise DomainError("two_factor_not_started", "先に「設定を始める」を押してください。")
    now = now or utcnow()
    if not _check_totp(user, code, now):
        raise ValidationFailed({"code": "確認コードが正しくありません。認証アプリに表示されている6桁の数字を入力してください。"})
    user.totp_enabled_at = now
    codes = _new_recovery_codes(user)
    audit.record("two_factor", "user", user.id, f"{user.email}: 二要素認証を有効化", user=user)
    db.session.flush()
    return codes


def _new_recovery_codes(user: User) -> list[str]:
    user.recovery_codes.clear()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        user.recovery_codes.append(RecoveryCode(code_hash=_hash_code(raw)))
    return codes


def check(user: User, code: str, *, now: datetime | None = None) -> bool:
    """The login's second step: a current TOTP code, or an unused recovery code (used up by this)."""
    now = now or utcnow()
    if not user.totp_enabled:
        return False
    if _check_totp(user, code, now):
        return True
    digest = _hash_code(code)
    for recovery in user.recovery_codes:
        if recovery.used_at is None and hmac.compare_digest(recovery.code_hash, digest):
            recovery.used_at = now
            return True
    return False


def remaining_recovery_codes(user: User) -> int:
    return sum(1 for code in user.recovery_codes if code.used_at is None)


def disable(user: User, password: str, code: str, *, now: datetime | None = None) -> None:
    """Switch two-factor off; needs the password and a current code (or a recovery code)."""
    from . import audit

    if not user.totp_enabled:
        raise DomainError("two_factor_disabled", "二要素認証は有効になっていません。")
    errors = {}
    if not verify_password(user, password or ""):
        errors["password"] = "パスワードが正しくありません。"
    if not check(user, code, now=now):
        errors["code"] = "確認コードが正しくありません。"
    if errors:
        raise ValidationFailed(errors)
    user.totp_secret, user.totp_enabled_at, user.totp_last_step = "", None, 0
    user.recovery_codes.clear()
    audit.record("two_factor", "user", user.id, f"{user.email}: 二要素認証を無効化", user=user)
    db.session.flush()
