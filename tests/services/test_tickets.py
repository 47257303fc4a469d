"""Ticket codes: normalising what a scanner or a person typed before the signature check."""

from __future__ import annotations

import pytest

from eventapp.services.tickets import (
    InvalidTicket,
    NotATicket,
    make_ticket_code,
    manage_token_in,
    normalize_ticket_input,
    verify_ticket_code,
)


def full_width(text: str) -> str:
    """What a Japanese IME in full-width mode types for ASCII letters, digits and '-'."""
    return "".join("－" if ch == "-" else chr(ord(ch) + 0xFEE0) for ch in text)


@pytest.fixture
def code(ctx) -> str:
    return make_ticket_code(11)


def test_full_width_code_from_the_ime_is_the_code(code):
    typed = full_width(code)
    assert typed.startswith("Ｅ１１－") and typed != code
    assert normalize_ticket_input(typed) == code
    assert verify_ticket_code(typed) == 11


@pytest.mark.parametrize("dash", ["ー", "－", "−", "‐", "ｰ", "–"])
def test_dash_variants_become_hyphens(code, dash):
    assert normalize_ticket_input(full_width(code).replace("－", dash)) == code
    assert normalize_ticket_input(code.replace("-", dash)) == code


@pytest.mark.parametrize("wrap", [
    "{}", "  {}  ", "{}\r\n", "{}\t", "\n{}\r", "]Q1{}", "]Q1{}\r", '"{}"', "'{}'", "「{}」", "\u200b{}",
    "https://events.example.jp/checkin?code={}", "https://example.jp/t/{}/", "{}&x=1",
])
def test_scanner_prefixes_suffixes_and_urls_are_stripped(code, wrap):
    assert normalize_ticket_input(wrap.format(code)) == code


def test_lower_case_is_upper_cased(code):
    assert normalize_ticket_input(code.lower()) == code
    assert normalize_ticket_input(full_width(code.lower())) == code


@pytest.mark.parametrize("text", ["", "   ", "hello", "https://example.jp/", "E11-ABC", "1234567890123",
                                  "こんにちは", None])
def test_text_not_shaped_like_a_code_is_not_a_ticket(ctx, text):
    with pytest.raises(NotATicket) as exc:
        normalize_ticket_input(text)
    assert exc.value.code == "not_a_ticket" and exc.value.message == "チケットのQRコードではありません。"
    with pytest.raises(NotATicket):
        verify_ticket_code(text)


def test_code_glued_to_other_letters_is_not_taken(code):
    with pytest.raises(NotATicket):
        normalize_ticket_input("X" + code)
    with pytest.raises(NotATicket):
        normalize_ticket_input(code + "A")


def test_well_formed_code_with_a_bad_signature_is_invalid_signature(code):
    altered = code[:-1] + ("A" if code[-1] != "A" else "B")
    with pytest.raises(InvalidTicket) as exc:
        verify_ticket_code(full_width(altered))
    assert exc.value.code == "invalid_signature"


def test_manage_token_in_a_manage_url():
    token = "abcDEF123_-xyzXYZ789abcdEFGH0123"
    assert manage_token_in(f"https://events.example.jp/r/{token}\r\n") == token
    assert manage_token_in(f"https://events.example.jp/r/{token}?new=1") == token
    assert manage_token_in("https://events.example.jp/events/abc") is None
