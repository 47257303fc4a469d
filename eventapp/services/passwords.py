"""Staff password policy (OWASP ASVS 2.1.7): a length minimum, no common password from the bundled list,
nothing containing the account's e-mail or the service's name, and no trivial pattern.

One function answers for every place a staff password is set (create-user on the CLI, the admin's
staff form, the own password change), so the rules and their Japanese messages are the same everywhere.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

MIN_PASSWORD = 10
MAX_PASSWORD = 200  # hashing a huge input is only work for an attacker
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt"
# Names of this service that a guesser tries first.
APP_NAMES = ("eventapp", "遠恋複業課", "enren")
# A password that is a piece of one of these (either direction) is a sequence, not a secret.
SEQUENCES = ("0123456789" * 3, "abcdefghijklmnopqrstuvwxyz", "qwertyuiop", "asdfghjkl", "zxcvbnm",
             "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p", "あいうえおかきくけこさしすせそたちつてとなにぬねの")
SHORTEST_EMAIL_PART = 3  # "jo@…" in a password is no leak of the address


@cache
def common_passwords() -> frozenset[str]:
    with COMMON_PASSWORDS_FILE.open(encoding="utf-8") as handle:
        return frozenset(line.strip() for line in handle if line.strip())


def _fold(text: str) -> str:
    # Full-width and case variants are the same password to a guesser.
    return unicodedata.normalize("NFKC", text).casefold()


def _is_trivial(folded: str) -> bool:
    # One unit repeated ("aaaaaaaaaa", "abcabcabcabc", "12121212121") …
    for size in range(1, 5):
        unit = folded[:size]
        if unit * (len(folded) // size) + unit[: len(folded) % size] == folded:
            return True
    # … or a run along the alphabet, the digits or a keyboard row.
    return any(folded in sequence or folded in sequence[::-1] for sequence in SEQUENCES)


def password_problem(password: str, *, email: str = "") -> str | None:
    """The Japanese message for why `password` is refused, or None when it is acceptable."""
    password = password or ""
    if len(password) < MIN_PASSWORD:
        return f"パスワードは{MIN_PASSWORD}文字以上にしてください。"
    if len(password) > MAX_PASSWORD:
        return f"パスワードは{MAX_PASSWORD}文字以内にしてください。"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in password):
        return "パスワードに制御文字は使えません。"
    folded = _fold(password)
    if _is_trivial(folded):
        return "同じ文字の繰り返しや「1234567890」「abcdefghij」のような並びはパスワードに使えません。"
    if folded in common_passwords():
        return "よく使われているパスワードのため使えません。推測されにくい単語を3つ以上組み合わせるなどしてください。"
    if any(_fold(name) in folded for name in APP_NAMES):
        return "サービス名(eventapp・遠恋複業課・enren)を含むパスワードは使えません。"
    local_part = _fold(email).partition("@")[0]
    if len(local_part) >= SHORTEST_EMAIL_PART and local_part in folded:
        return "メールアドレスを含むパスワードは使えません。"
    return None
