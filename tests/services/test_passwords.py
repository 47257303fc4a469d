"""Staff password policy (issue 21, item 10; ASVS 2.1.7): length, the bundled common-password list, the
account's e-mail and the service's name, trivial patterns; the same answer on the CLI and the forms."""

from __future__ import annotations

import pytest

from eventapp.services import accounts
from eventapp.services.errors import ValidationFailed
from eventapp.services.passwords import COMMON_PASSWORDS_FILE, common_passwords, password_problem
from tests.staff_support import PASSWORD, login, make_user, post_form

EMAIL = "hanako.iwate@example.jp"


def test_the_list_is_bundled_in_the_package_and_large():
    assert COMMON_PASSWORDS_FILE.is_file() and "eventapp" in COMMON_PASSWORDS_FILE.parts
    passwords = common_passwords()
    assert len(passwords) >= 10_000
    assert {"password", "123456", "qwertyuiop", "iloveyou"} <= passwords


@pytest.mark.parametrize("password", ["aaaaaaaaaa", "1234567890", "0987654321", "abcdefghij", "ABCDEFGHIJKL",
                                      "qwertyuiop", "abcabcabcabc", "1212121212", "zzzzzzzzzzzzzzzzzzzz",
                                      "１２３４５６７８９０"])
def test_trivial_patterns_are_refused(password):
    problem = password_problem(password, email=EMAIL)
    assert problem is not None and ("並び" in problem or "よく使われて" in problem), (password, problem)


@pytest.mark.parametrize("password", ["password123", "Password1234", "iloveyou123", "Basketball", "princess123"])
def test_common_passwords_are_refused(password):
    assert password in common_passwords() or password.lower() in common_passwords(), "test data is in the list"
    assert password_problem(password, email=EMAIL) is not None


@pytest.mark.parametrize("password", ["my-eventapp-pass", "遠恋複業課のパスワード2026", "ENREN-hanamaki-9", "ｅｎｒｅｎ-hanamaki-9"])
def test_the_service_name_is_refused(password):
    assert "サービス名" in password_problem(password, email=EMAIL)


def test_the_email_local_part_is_refused():
    assert "メールアドレス" in password_problem("Hanako.Iwate-2026!", email=EMAIL)
    assert "メールアドレス" in password_problem("xx-hanako.iwate@example.jp", email=EMAIL)
    # A very short local part ("jo@…") appearing somewhere is no leak of the address.
    assert password_problem("banjo-harvest-grapes", email="jo@example.jp") is None


def test_length_minimum_and_maximum_stay():
    assert "10文字以上" in password_problem("Xq7!pz2", email=EMAIL)
    assert "文字以内" in password_problem("long-" * 50, email=EMAIL)
    assert "制御文字" in password_problem("grape-harvest\x00-2026", email=EMAIL)


@pytest.mark.parametrize("password", [PASSWORD, "hanamaki-grape-harvest", "いわての ぶどう 収穫 2026", "Tq8#vL2m!xZr"])
def test_good_passwords_pass(password):
    assert password_problem(password, email=EMAIL) is None


def test_create_user_and_change_password_apply_the_policy(ctx):
    with pytest.raises(ValidationFailed) as exc:
        accounts.create_user("kanri@example.jp", "staff", "1234567890")
    assert "並び" in exc.value.fields["password"]
    with pytest.raises(ValidationFailed) as exc:
        accounts.create_user("kanri@example.jp", "staff", "kanri-secret-99")
    assert "メールアドレス" in exc.value.fields["password"]
    user = make_user("staff", email="tanaka@example.jp")
    with pytest.raises(ValidationFailed) as exc:
        accounts.change_password(user, PASSWORD, "aaaaaaaaaaaa", "aaaaaaaaaaaa")
    assert "並び" in exc.value.fields["new_password"]
    with pytest.raises(ValidationFailed) as exc:
        accounts.change_password(user, PASSWORD, "password1234", "password1234")
    assert "よく使われている" in exc.value.fields["new_password"]
    # A generated password always passes its own policy.
    generated, password = accounts.create_user("auto@example.jp", "checkin")
    assert password_problem(password, email=generated.email) is None


def test_cli_create_user_explains_in_japanese(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-user", "kanri@example.jp", "--role", "admin", "--password", "qwertyuiop"])
    assert result.exit_code != 0 and "並び" in result.output
    result = runner.invoke(args=["create-user", "kanri@example.jp", "--role", "admin", "--password", "eventapp-admin-1"])
    assert result.exit_code != 0 and "サービス名" in result.output
    assert runner.invoke(args=["create-user", "kanri@example.jp", "--role", "admin",
                               "--password", "hanamaki-grape-harvest"]).exit_code == 0


def test_staff_forms_show_the_policy_message(app, client):
    with app.app_context():
        admin_email = make_user("admin").email
    login(client, admin_email)
    response = post_form(client, "/staff/users", {"email": "new@example.jp", "role": "staff", "name": "",
                                                  "password": "1234567890"}, token_from="/staff/users")
    assert response.status_code == 422 and "「1234567890」" in response.get_data(as_text=True)
    response = post_form(client, "/staff/account/password", {
        "current_password": PASSWORD, "new_password": "password1234", "confirm_password": "password1234"},
        token_from="/staff/account/password")
    assert response.status_code == 422 and "よく使われているパスワード" in response.get_data(as_text=True)
