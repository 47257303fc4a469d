"""Optional TOTP two-factor login for admins (issue 21, item 10): enrolment with a QR code and the secret
as text, confirmation with a code, ten single-use recovery codes shown once, the code step at login,
disabling with password and code. Codes are computed with pyotp as an authenticator app would."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from weasyprint import HTML

from eventapp.extensions import db
from eventapp.models import RecoveryCode, User
from tests.conftest import csrf_token_from
from tests.pdf_support import decode_qr_codes
from tests.staff_support import PASSWORD, login, make_user, post_form

PAGE = "/staff/account/two-factor"


def _password_step(client, email: str, password: str = PASSWORD):
    token = csrf_token_from(client.get("/staff/login").get_data(as_text=True))
    return client.post("/staff/login", data={"email": email, "password": password, "csrf_token": token})


def _code_step(client, code: str):
    token = csrf_token_from(client.get("/staff/login/code").get_data(as_text=True))
    return client.post("/staff/login/code", data={"code": code, "csrf_token": token})


def _wrong_code(totp: pyotp.TOTP) -> str:
    """A 6-digit code that no step within the accepted window has."""
    window = {totp.at(time.time() + offset) for offset in (-60, -30, 0, 30, 60)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in window)


def _logged_in(client) -> bool:
    return client.get("/staff/").status_code == 200


@pytest.fixture
def enrolled(app, client):
    """An admin who switched two-factor on; returns (email, secret, recovery codes) and logs out."""
    with app.app_context():
        email = make_user("admin").email
    login(client, email)
    page = client.get(PAGE).get_data(as_text=True)
    assert "設定を始める" in page
    assert post_form(client, PAGE, {"action": "begin"}, token_from=PAGE).status_code == 303
    page = client.get(PAGE).get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert 'id="totp-qr"><svg' in page
    totp = pyotp.TOTP(secret)

    response = post_form(client, PAGE, {"action": "confirm", "code": _wrong_code(totp)}, token_from=PAGE)
    assert response.status_code == 422 and "確認コードが正しくありません" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(User).filter_by(email=email).one().totp_enabled_at is None

    response = post_form(client, PAGE, {"action": "confirm", "code": totp.now()}, token_from=PAGE)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    codes = re.findall(r"<code>([a-z2-9]{5}-[a-z2-9]{5})</code>", response.get_data(as_text=True))
    assert len(codes) == len(set(codes)) == 10
    # Shown once: the page no longer lists them, and only hashes are stored.
    assert not any(code in client.get(PAGE).get_data(as_text=True) for code in codes)
    with app.app_context():
        stored = db.session.query(RecoveryCode.code_hash).all()
        assert len(stored) == 10 and not any(code.replace("-", "") in h for (h,) in stored for code in codes)
    assert post_form(client, "/staff/logout").status_code == 303
    return email, secret, codes


def test_the_qr_code_carries_the_secret(app, client):
    """Read by a real decoder from the rendered page: the same secret as the text, for an authenticator app."""
    with app.app_context():
        email = make_user("admin").email
    login(client, email)
    post_form(client, PAGE, {"action": "begin"}, token_from=PAGE)
    page = client.get(PAGE).get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    svg = re.search(r'id="totp-qr">(<svg.*?</svg>)', page, re.S).group(1)
    [uri] = decode_qr_codes(HTML(string=f"<html><body>{svg}</body></html>").write_pdf())
    assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri and "issuer=" in uri
    code = pyotp.parse_uri(uri).now()
    assert post_form(client, PAGE, {"action": "confirm", "code": code}, token_from=PAGE).status_code == 200


def test_login_asks_for_the_code_after_the_password(client, enrolled):
    email, secret, _ = enrolled
    response = _password_step(client, email)
    assert response.status_code == 303 and "/staff/login/code" in response.headers["Location"]
    assert not _logged_in(client), "the password alone is not a login"
    totp = pyotp.TOTP(secret)
    assert _code_step(client, _wrong_code(totp)).status_code == 401
    assert not _logged_in(client)
    # The code used at enrolment is spent; the next 30-second step's code (within the window) works.
    next_code = totp.at(time.time() + 30)
    assert _code_step(client, next_code).status_code == 303
    assert _logged_in(client)
    # The same code cannot be replayed for another login.
    assert post_form(client, "/staff/logout").status_code == 303
    _password_step(client, email)
    assert _code_step(client, next_code).status_code == 401
    assert not _logged_in(client)


def test_wrong_password_never_reaches_the_code_step(client, enrolled):
    email, _, _ = enrolled
    assert _password_step(client, email, "not-the-password").status_code == 401
    response = client.get("/staff/login/code")
    assert response.status_code == 303 and response.headers["Location"].startswith("/staff/login")


def test_recovery_codes_are_single_use(client, enrolled):
    email, _, codes = enrolled
    _password_step(client, email)
    assert _code_step(client, codes[0].upper()).status_code == 303  # typed in capitals: still the code
    assert _logged_in(client)
    assert "未使用の回復コード: 9 個" in client.get(PAGE).get_data(as_text=True)
    post_form(client, "/staff/logout")
    _password_step(client, email)
    assert _code_step(client, codes[0]).status_code == 401, "a used recovery code is refused"
    assert _code_step(client, codes[1]).status_code == 303
    assert _logged_in(client)


def test_disable_needs_password_and_code(app, client, enrolled):
    email, secret, codes = enrolled
    _password_step(client, email)
    _code_step(client, codes[0])
    totp = pyotp.TOTP(secret)
    response = post_form(client, PAGE, {"action": "disable", "password": "wrong-password-x",
                                        "code": totp.at(time.time() + 30)}, token_from=PAGE)
    assert response.status_code == 422 and "パスワードが正しくありません" in response.get_data(as_text=True)
    response = post_form(client, PAGE, {"action": "disable", "password": PASSWORD, "code": "12345"}, token_from=PAGE)
    assert response.status_code == 422
    assert post_form(client, PAGE, {"action": "disable", "password": PASSWORD, "code": codes[1]},
                     token_from=PAGE).status_code == 303
    with app.app_context():
        user = db.session.query(User).filter_by(email=email).one()
        assert (user.totp_enabled_at, user.totp_secret, user.recovery_codes) == (None, "", [])
    post_form(client, "/staff/logout")
    assert _password_step(client, email).status_code == 303
    assert _logged_in(client), "without two-factor the password is enough again"


def test_only_admins_see_the_enrolment_page(app, client):
    with app.app_context():
        email = make_user("staff").email
    login(client, email)
    assert client.get(PAGE).status_code == 403


def test_the_password_step_expires_after_five_minutes(client, enrolled, monkeypatch):
    from eventapp import auth

    email, secret, codes = enrolled
    now = [time.time()]
    monkeypatch.setattr(auth, "clock", lambda: now[0])
    _password_step(client, email)
    now[0] += 301
    response = client.get("/staff/login/code")
    assert response.status_code == 303 and response.headers["Location"].startswith("/staff/login")
    token = csrf_token_from(client.get("/staff/login").get_data(as_text=True))
    client.post("/staff/login/code", data={"code": codes[0], "csrf_token": token})
    assert not _logged_in(client), "a recovery code alone, after the password step expired, is no login"
