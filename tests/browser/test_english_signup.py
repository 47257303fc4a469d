"""An English-speaking participant on a 375 px phone (issue 19, item 3): the catalogue, event page and
sign-up in English, a Latin-letter name reading and the English privacy notice, end to end to the
manage page; the registration records the English notice as the one consented to."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from eventapp.extensions import db
from eventapp.models import Registration
from eventapp.services import privacy
from tests.browser.test_accessibility import axe_violations
from tests.browser.test_signup_mobile import assert_no_horizontal_scroll, shoot
from tests.factories import make_event

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_english_phone_signup_with_latin_reading_and_english_notice(ctx, browser_server, phone: Page, artifacts):
    privacy.publish_notice("参加者の受付と連絡に利用します。", "取得する情報: 氏名、メールアドレス。", "事務局",
                           "2026-04", english={"purpose": "We use your data to register you and to contact you.",
                                               "body": "Data collected: name, email address.",
                                               "contact": "The Enren office"})
    event = make_event(title="花巻ブドウ収穫体験", title_en="Grape harvest in Hanamaki",
                       summary="ブドウを収穫します", summary_en="Pick grapes with local farmers.")
    db.session.commit()

    phone.goto(browser_server.url + "/?lang=en")
    expect(phone.locator("html")).to_have_attribute("lang", "en")
    card_link = phone.get_by_role("link", name="Grape harvest in Hanamaki")
    expect(card_link).to_be_visible()
    shoot(phone, artifacts, "en-1-catalogue")
    assert_no_horizontal_scroll(phone, "English catalogue")

    card_link.click()
    expect(phone.get_by_role("heading", level=1)).to_have_text("Grape harvest in Hanamaki")
    expect(phone.locator(".lead")).to_have_text("Pick grapes with local farmers.")

    phone.get_by_role("link", name="Sign up").click()
    expect(phone.locator(".privacy-box")).to_contain_text("We use your data to register you and to contact you.")
    expect(phone.locator(".privacy-box")).not_to_contain_text("参加者の受付と連絡")
    phone.get_by_label("Full name").fill("Maria Fernanda Silva")
    reading = phone.get_by_label("Name reading (katakana or Latin letters)")
    expect(reading).not_to_have_attribute("required", "")
    reading.fill("Maria Fernanda")
    phone.get_by_label("Email address").fill("maria.browser@example.com")
    prefecture = phone.get_by_label("Prefecture of residence")
    prefecture.select_option(label="Outside Japan")
    phone.get_by_label("I have ties to Iwate").check()
    phone.get_by_label("I agree to the handling of personal information described above").check()
    shoot(phone, artifacts, "en-2-form")
    assert_no_horizontal_scroll(phone, "English sign-up form")
    assert axe_violations(phone, browser_server.url) == []  # the English form (notice, optional reading)
    phone.get_by_role("button", name="Sign up").click()

    expect(phone.locator(".status-label")).to_have_text("Confirmed")
    expect(phone.locator("body")).to_contain_text("Grape harvest in Hanamaki")
    expect(phone.locator(".facts")).to_contain_text("Maria Fernanda")
    shoot(phone, artifacts, "en-3-manage")
    assert axe_violations(phone, browser_server.url) == []
    assert_no_horizontal_scroll(phone, "English manage page")

    db.session.rollback()
    registration = db.session.execute(select(Registration)).scalar_one()
    assert registration.furigana == "Maria Fernanda" and registration.prefecture == "海外"
    assert registration.iwate_relation == "connected" and registration.event_id == event.id
    assert (registration.consent_version, registration.consent_language) == ("2026-04", "en")
