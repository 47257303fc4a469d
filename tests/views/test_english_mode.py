"""English mode (`?lang=en`) for participants who do not read Japanese (issue 19, item 3): translated
choices, the English privacy notice and the consent's language, events' English texts with the
Japanese fallback, and the optional name reading in kana or Latin letters (and where it sorts)."""

from __future__ import annotations

import re

from sqlalchemy import select

from eventapp.extensions import db
from eventapp.formatting import kana_sort_key
from eventapp.models import Event, Registration
from eventapp.services import privacy
from tests.factories import make_event
from tests.views.test_public import Page, signup_form_data, token_from_redirect


def _notice_shown(html: str) -> str:
    match = re.search(r'name="notice_shown" value="([^"]+)"', html)
    assert match, "the sign-up form carries no notice_shown field"
    return match.group(1)


def _english_signup(client, slug: str, **overrides):
    """GET the form in English mode and POST it with what that page rendered (CSRF, notice_shown)."""
    html = client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    data = signup_form_data(html, notice_shown=_notice_shown(html), **overrides)
    response = client.post(f"/events/{slug}/register", data=data)
    response.get_data()
    response.close()
    return response


def _registration(app, token: str) -> dict:
    with app.app_context():
        r = db.session.execute(select(Registration).where(Registration.manage_token == token)).scalar_one()
        return {"furigana": r.furigana, "prefecture": r.prefecture, "iwate_relation": r.iwate_relation,
                "consent_version": r.consent_version, "consent_language": r.consent_language}


def _publish(app, *, english: bool, version: str) -> None:
    with app.app_context():
        privacy.publish_notice(
            "参加者の受付と連絡に利用します。", "取得する情報: 氏名。", "事務局", version,
            english={"purpose": "Used to register you and to contact you.", "body": "Data collected: your name.",
                     "contact": "The office"} if english else None)
        db.session.commit()


def _slug(app, **overrides) -> str:
    with app.app_context():
        return make_event(**overrides).slug


# --- choices -----------------------------------------------------------------------------------------

def test_prefectures_and_relation_choices_are_english_but_the_values_stay_japanese(app, client):
    slug = _slug(app)
    page = Page(client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True))
    assert "Tokyo" in page.text and "Iwate" in page.text and "Outside Japan" in page.text
    assert "東京都" not in page.text and "北海道" not in page.text
    values = [o.get("value") for o in page.find_all("option")]
    assert "東京都" in values and "海外" in values
    assert "I am from Iwate" in page.text and "岩手県出身" not in page.text

    response = _english_signup(client, slug, furigana="Maria Fernanda", prefecture="岩手県",
                               iwate_relation="connected")
    stored = _registration(app, token_from_redirect(response))
    assert stored["prefecture"] == "岩手県" and stored["iwate_relation"] == "connected"


def test_japanese_mode_keeps_japanese_prefectures(app, client):
    slug = _slug(app)
    text = Page(client.get(f"/events/{slug}/register?lang=ja").get_data(as_text=True)).text
    assert "東京都" in text and "Tokyo" not in text and "ふりがな" in text


# --- privacy notice ------------------------------------------------------------------------------------

def test_english_notice_is_shown_and_recorded(app, client):
    _publish(app, english=True, version="2026-04")
    slug = _slug(app)
    html = client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    assert "Used to register you and to contact you." in html and "参加者の受付と連絡" not in html
    assert _notice_shown(html) == "2026-04/en"
    assert "Japanese only" not in html

    stored = _registration(app, token_from_redirect(_english_signup(client, slug, furigana="")))
    assert (stored["consent_version"], stored["consent_language"]) == ("2026-04", "en")

    privacy_page = client.get("/privacy?lang=en").get_data(as_text=True)
    assert "Data collected: your name." in privacy_page


def test_japanese_mode_records_the_japanese_notice(app, client):
    _publish(app, english=True, version="2026-05")
    slug = _slug(app)
    html = client.get(f"/events/{slug}/register?lang=ja").get_data(as_text=True)
    assert _notice_shown(html) == "2026-05/ja" and "参加者の受付と連絡" in html
    response = client.post(f"/events/{slug}/register", data=signup_form_data(html, notice_shown="2026-05/ja"))
    stored = _registration(app, token_from_redirect(response))
    assert (stored["consent_version"], stored["consent_language"]) == ("2026-05", "ja")


def test_without_an_english_notice_english_mode_shows_the_japanese_one_with_a_note(app, client):
    _publish(app, english=False, version="2026-06")
    slug = _slug(app)
    html = client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    assert "参加者の受付と連絡に利用します。" in html
    assert "The privacy notice is available in Japanese only." in html
    assert _notice_shown(html) == "2026-06/ja"
    stored = _registration(app, token_from_redirect(_english_signup(client, slug, furigana="")))
    assert stored["consent_language"] == "ja"


def test_a_forged_or_stale_notice_is_refused_and_the_current_one_shown(app, client):
    _publish(app, english=False, version="2026-07")
    slug = _slug(app)
    html = client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True)
    # Claims the English text, which this version does not have.
    forged = client.post(f"/events/{slug}/register", data=signup_form_data(html, notice_shown="2026-07/en"))
    assert forged.status_code == 422
    assert "The privacy notice has just been updated" in forged.get_data(as_text=True)
    # The form was read before a new version was published.
    _publish(app, english=True, version="2026-08")
    stale = client.post(f"/events/{slug}/register", data=signup_form_data(html, notice_shown="2026-07/ja"))
    body = stale.get_data(as_text=True)
    assert stale.status_code == 422 and _notice_shown(body) == "2026-08/en"
    with app.app_context():
        assert db.session.execute(select(Registration.id)).first() is None


def test_staff_publish_an_english_notice_and_half_an_english_text_is_refused(app, ctx):
    import pytest

    from eventapp.services.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as refused:
        privacy.publish_notice("目的", "本文", "窓口", "2026-09", english={"purpose": "Purpose only"})
    assert "body_en" in refused.value.fields
    notice = privacy.publish_notice("目的", "本文", "窓口", "2026-09",
                                    english={"purpose": "Purpose", "body": "Body", "contact": ""})
    assert notice.has_english and notice.text("en") == {"purpose": "Purpose", "body": "Body", "contact": "窓口"}
    assert notice.text("ja")["purpose"] == "目的"


# --- event texts -----------------------------------------------------------------------------------------

def test_event_english_texts_are_shown_in_english_mode(app, client):
    slug = _slug(app, title="花巻ブドウ収穫", title_en="Grape harvest in Hanamaki", summary="ブドウを収穫します",
                 summary_en="Pick grapes with local farmers", description="詳しい説明",
                 description_en="A day in the vineyards.")
    catalogue = client.get("/?lang=en").get_data(as_text=True)
    assert "Grape harvest in Hanamaki" in catalogue and "花巻ブドウ収穫" not in catalogue
    detail = client.get(f"/events/{slug}").get_data(as_text=True)  # the lang cookie keeps English
    assert "<title>Grape harvest in Hanamaki" in detail
    assert "Pick grapes with local farmers" in detail and "A day in the vineyards." in detail
    assert "ブドウを収穫します" not in detail
    signup = client.get(f"/events/{slug}/register").get_data(as_text=True)
    assert "Grape harvest in Hanamaki" in signup
    token = token_from_redirect(_english_signup(client, slug, furigana="Maria"))
    assert "Grape harvest in Hanamaki" in client.get(f"/r/{token}").get_data(as_text=True)

    japanese = client.get(f"/events/{slug}?lang=ja").get_data(as_text=True)
    assert "花巻ブドウ収穫" in japanese and "Grape harvest" not in japanese


def test_event_without_english_texts_falls_back_to_japanese(app, client):
    slug = _slug(app, title="遠野の民話ツアー", summary="語り部と歩きます", title_en="", summary_en="")
    detail = client.get(f"/events/{slug}?lang=en").get_data(as_text=True)
    assert "遠野の民話ツアー" in detail and "語り部と歩きます" in detail


def test_staff_event_form_saves_english_texts_with_the_japanese_rules(app, ctx):
    import pytest

    from eventapp.services import events as events_service
    from eventapp.services.errors import ValidationFailed

    event = make_event()
    events_service.apply_event_fields(event, {"title_en": "  Tour  ", "summary_en": "Line 1\r\nLine 2"},
                                      creating=False)
    assert event.title_en == "Tour" and event.summary_en == "Line 1\nLine 2"
    with pytest.raises(ValidationFailed) as too_long:
        events_service.apply_event_fields(event, {"title_en": "x" * 301}, creating=False)
    assert "title_en" in too_long.value.fields
    with pytest.raises(ValidationFailed) as control:
        events_service.apply_event_fields(event, {"title_en": "Bad\x07bell"}, creating=False)
    assert "title_en" in control.value.fields  # control characters refused, as in the Japanese title


def test_staff_event_form_has_the_english_fieldset(app, client):
    from tests.staff_support import login, make_user

    with app.app_context():
        email = make_user("staff").email
    login(client, email)
    html = client.get("/staff/events/new").get_data(as_text=True)
    assert "英語表示(任意)" in html and 'name="title_en"' in html and 'name="description_en"' in html


# --- name reading ------------------------------------------------------------------------------------------

def test_english_mode_accepts_latin_and_kana_readings_and_none(app, client):
    slug = _slug(app)
    for n, (reading, stored) in enumerate((("Maria Fernanda", "Maria Fernanda"),
                                           ("マリア・フェルナンダ", "まりあ・ふぇるなんだ"),
                                           ("", ""), ("José O'Neil-Smith", "José O'Neil-Smith"))):
        client.delete_cookie("lang")
        response = _english_signup(client, slug, furigana=reading, email=f"reader{n}@example.com")
        assert _registration(app, token_from_redirect(response))["furigana"] == stored
    page = Page(client.get(f"/events/{slug}/register?lang=en").get_data(as_text=True))
    assert "Name reading (katakana or Latin letters)" in page.text
    assert not page.find_all("input", name="furigana", required="")  # optional in English


def test_english_mode_refuses_kanji_in_the_reading(app, client):
    slug = _slug(app)
    response = _english_signup(client, slug, furigana="山田")
    assert response.status_code == 422
    assert "katakana, hiragana or Latin letters" in response.get_data(as_text=True)


def test_japanese_mode_still_requires_kana_furigana(app, client):
    slug = _slug(app)
    html = client.get(f"/events/{slug}/register?lang=ja").get_data(as_text=True)
    latin = client.post(f"/events/{slug}/register", data=signup_form_data(html, furigana="Maria Fernanda"))
    assert latin.status_code == 422 and "ひらがなまたはカタカナ" in latin.get_data(as_text=True)
    empty = client.post(f"/events/{slug}/register", data=signup_form_data(html, furigana=""))
    assert empty.status_code == 422 and "ふりがなを入力してください" in empty.get_data(as_text=True)


def test_gojuon_sort_puts_latin_readings_after_kana_and_empty_last():
    readings = ["", "Zoe", "わたなべ", "アオキ", "maria", "いわて", "Émile", "ががく", "かき"]
    ordered = sorted(readings, key=kana_sort_key)
    assert ordered == ["アオキ", "いわて", "ががく", "かき", "わたなべ", "Émile", "maria", "Zoe", ""]


def test_participant_list_sorts_latin_readings_after_kana(app, ctx):
    from eventapp.services.participants import participant_list
    from eventapp.services.registration import SignupRequest, sign_up
    from tests.factories import person_input

    event = make_event()
    for reading, language in (("Maria", "en"), ("", "en"), ("さとう", "ja"), ("アベ", "ja")):
        sign_up(event.id, SignupRequest(person=person_input(furigana=reading), consent=True,
                                        locale=language))
    db.session.commit()
    rows = participant_list(db.session.get(Event, event.id), sort="kana").rows
    assert [r.furigana for r in rows] == ["あべ", "さとう", "Maria", ""]


def test_admin_publishes_the_english_notice_on_the_privacy_page(app, client):
    from tests.staff_support import login, make_user, post_form

    with app.app_context():
        email = make_user("admin").email
    login(client, email)
    page = client.get("/staff/privacy").get_data(as_text=True)
    assert 'name="purpose_en"' in page and "英語版(任意)" in page
    response = post_form(client, "/staff/privacy", {
        "purpose": "利用目的", "body": "本文", "contact": "窓口", "version": "2027-01",
        "purpose_en": "Purpose in English", "body_en": "Body in English", "contact_en": ""}, token_from="/staff/privacy")
    assert response.status_code == 303
    assert "(英語版あり)" in client.get("/staff/privacy").get_data(as_text=True)
    english = client.get("/privacy?lang=en").get_data(as_text=True)
    assert "Purpose in English" in english and "窓口" in english  # the contact falls back to the Japanese


def test_english_companions_may_give_a_latin_reading_or_none(app, ctx):
    from eventapp.services.registration import SignupRequest, sign_up
    from tests.factories import person_input

    event = make_event(max_companions=2)
    result = sign_up(event.id, SignupRequest(
        person=person_input(furigana="Maria"), consent=True, locale="en",
        companions=[{"name": "Ana Silva", "furigana": "Ana"}, {"name": "João Silva", "furigana": ""}]))
    assert [r.furigana for r in result.companions] == ["Ana", ""]
    assert {r.consent_language for r in [result.registration, *result.companions]} == {"en"}


def test_a_latin_reading_survives_edits_but_japanese_edits_still_need_kana(app, ctx):
    import pytest

    from eventapp.services import mypage
    from eventapp.services.errors import ValidationFailed
    from eventapp.services.registration import SignupRequest, sign_up
    from tests.factories import person_input

    event = make_event()
    latin = sign_up(event.id, SignupRequest(person=person_input(furigana="Maria"), consent=True, locale="en")).registration
    kana = sign_up(event.id, SignupRequest(person=person_input(furigana="さとう"), consent=True)).registration
    db.session.commit()
    # Edited in Japanese mode, a registration made with a Latin reading keeps accepting it.
    assert mypage.update_attendee(latin, {**latin.attendee, "furigana": "Maria F"}, {}, by="participant:1")
    assert latin.furigana == "Maria F"
    with pytest.raises(ValidationFailed) as refused:
        mypage.update_attendee(kana, {**kana.attendee, "furigana": "Sato"}, {}, by="participant:2")
    assert "furigana" in refused.value.fields
    assert mypage.update_attendee(kana, {**kana.attendee, "furigana": "Sato"}, {}, by="participant:2",
                                  form_language="en")


def test_api_sign_ups_keep_kana_furigana_even_in_english(app, ctx):
    import pytest

    from eventapp.services.errors import ValidationFailed
    from eventapp.services.registration import SignupRequest, sign_up
    from tests.factories import person_input

    event = make_event()
    with pytest.raises(ValidationFailed) as refused:
        sign_up(event.id, SignupRequest(person=person_input(furigana="Maria"), consent=True, locale="en",
                                        source="api"))
    assert "furigana" in refused.value.fields


def test_shared_card_and_json_ld_use_the_english_title_in_english_mode(app, client):
    slug = _slug(app, title="花巻ブドウ収穫", title_en="Grape harvest in Hanamaki")
    english = client.get(f"/events/{slug}?lang=en").get_data(as_text=True)
    assert '<meta property="og:title" content="Grape harvest in Hanamaki">' in english
    assert '"name": "Grape harvest in Hanamaki"' in english or '"name":"Grape harvest in Hanamaki"' in english
    japanese = client.get(f"/events/{slug}?lang=ja").get_data(as_text=True)
    assert '<meta property="og:title" content="花巻ブドウ収穫">' in japanese
