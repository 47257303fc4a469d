"""PDF routes: who may download what, and the links to them on the participant pages."""

from __future__ import annotations

import pytest

from tests.conftest import make_event, make_registration
from tests.pdf_support import decode_qr_codes, flat, page_count, pdf_text, save_artifact
from tests.staff_support import login, make_user


def assert_pdf(response) -> bytes:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF-")
    assert page_count(response.data) >= 1
    return response.data


def test_programme_pdf_is_public_and_linked_from_the_event_page(ctx, client):
    event = make_event(title="花巻ぶどう収穫フィールドワーク")
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert f'href="/events/{event.slug}/programme.pdf"' in page
    pdf = assert_pdf(client.get(f"/events/{event.slug}/programme.pdf"))
    save_artifact(pdf, "view-programme")
    assert "花巻ぶどう収穫フィールドワーク" in flat(pdf_text(pdf))


def test_programme_pdf_of_a_draft_or_unknown_event_is_404(ctx, client):
    draft = make_event(status="draft")
    assert client.get(f"/events/{draft.slug}/programme.pdf").status_code == 404
    assert client.get("/events/no-such-event/programme.pdf").status_code == 404


def test_ticket_pdf_from_the_manage_page(ctx, client):
    event = make_event()
    registration = make_registration(event, name="岩手 花子", furigana="いわて はなこ")
    page = client.get(f"/r/{registration.manage_token}").get_data(as_text=True)
    assert f'href="/r/{registration.manage_token}/ticket.pdf"' in page
    response = client.get(f"/r/{registration.manage_token}/ticket.pdf")
    pdf = assert_pdf(response)
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "岩手花子様" in flat(pdf_text(pdf))
    assert decode_qr_codes(pdf) == [registration.ticket_code]


def test_no_ticket_pdf_for_waitlisted_or_unknown_registrations(ctx, client):
    event = make_event(capacity=1)
    make_registration(event)
    waiting = make_registration(event)
    page = client.get(f"/r/{waiting.manage_token}").get_data(as_text=True)
    assert "ticket.pdf" not in page
    assert client.get(f"/r/{waiting.manage_token}/ticket.pdf").status_code == 404
    assert client.get("/r/not-a-token/ticket.pdf").status_code == 404


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        login(client, make_user("staff").email)
    return client


def test_staff_roster_and_badges(ctx, staff_client):
    event = make_event(title="夏油温泉フィールドワーク",
                       questions=[{"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか"}])
    make_registration(event, name="千葉 太郎", furigana="ちば たろう", answers={"bus": "yes"})
    make_registration(event, name="阿部 花子", furigana="あべ はなこ", answers={"bus": "no"})
    for preset in ("reception", "bus", "lodging", "insurance"):
        for sort in ("kana", "signup"):
            response = staff_client.get(f"/staff/events/{event.id}/roster.pdf?preset={preset}&sort={sort}")
            pdf = assert_pdf(response)
            assert response.headers["Cache-Control"] == "private, no-store"
            assert "千葉太郎" in flat(pdf_text(pdf))
    text = flat(pdf_text(staff_client.get(f"/staff/events/{event.id}/roster.pdf").data))
    assert text.index("阿部花子") < text.index("千葉太郎")  # default: 受付用, 五十音順
    pdf = assert_pdf(staff_client.get(f"/staff/events/{event.id}/badges.pdf"))
    assert "あべはなこ" in flat(pdf_text(pdf))


def test_staff_preview_of_a_draft_and_bad_roster_options(ctx, staff_client):
    event = make_event()
    draft = make_event(status="draft", title="準備中のイベント")
    response = staff_client.get(f"/events/{draft.slug}/programme.pdf")  # staff preview a draft's programme
    assert "準備中のイベント" in flat(pdf_text(assert_pdf(response)))
    assert response.headers["Cache-Control"] == "private, no-store"
    response = staff_client.get(f"/staff/events/{event.id}/roster.pdf?preset=nope")
    assert response.status_code == 422
    assert "名簿の種類" in response.get_data(as_text=True)
    assert staff_client.get(f"/staff/events/{event.id}/badges.pdf?sort=nope").status_code == 422
    assert staff_client.get("/staff/events/999999/roster.pdf").status_code == 404


def test_rosters_and_badges_are_staff_only(ctx, app, client):
    event = make_event()
    make_registration(event)
    for url in (f"/staff/events/{event.id}/roster.pdf", f"/staff/events/{event.id}/badges.pdf"):
        response = client.get(url)
        assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    login(client, make_user("checkin").email)
    for url in (f"/staff/events/{event.id}/roster.pdf", f"/staff/events/{event.id}/badges.pdf"):
        assert client.get(url).status_code == 403


def test_staff_event_page_links_every_printed_document(ctx, staff_client):
    event = make_event()
    html = staff_client.get(f"/staff/events/{event.id}").get_data(as_text=True)
    for preset in ("reception", "bus", "lodging", "insurance"):
        for sort in ("kana", "signup"):
            assert f"/staff/events/{event.id}/roster.pdf?preset={preset}&amp;sort={sort}" in html
    assert f"/staff/events/{event.id}/badges.pdf" in html
    assert f"/events/{event.slug}/programme.pdf" in html


def test_staff_event_page_links_the_checkin_screen(ctx, staff_client):
    event = make_event()
    html = staff_client.get(f"/staff/events/{event.id}").get_data(as_text=True)
    assert f'href="/checkin/events/{event.id}"' in html


@pytest.fixture
def pdf_cache_dir(app, tmp_path):
    saved = {k: app.config[k] for k in ("PDF_CACHE_DIR", "PDF_RATE_LIMIT")}
    app.config["PDF_CACHE_DIR"] = str(tmp_path / "pdf-cache")
    yield tmp_path / "pdf-cache"
    app.config.update(saved)


def test_programme_pdf_is_rendered_once_for_50_requests_and_shared_on_disk(ctx, client, pdf_cache_dir):
    from eventapp.services.documents import RENDERS

    event = make_event(title="キャッシュ試験")
    before = RENDERS["programme"]
    bodies = set()
    for _ in range(50):
        response = client.get(f"/events/{event.slug}/programme.pdf")
        assert_pdf(response)
        bodies.add(response.data)
    assert RENDERS["programme"] - before == 1
    assert len(bodies) == 1
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["ETag"] and response.headers["Last-Modified"]
    # One file, fully written (no temporary left), which another worker reads instead of rendering.
    files = sorted(p.name for p in pdf_cache_dir.glob("*.pdf"))
    assert files == [f"programme-{event.id}-{response.headers['ETag'].strip(chr(34))}.pdf"]
    assert not list(pdf_cache_dir.glob(".tmp-*"))


def test_programme_pdf_answers_304_to_conditional_requests(ctx, client, pdf_cache_dir):
    from eventapp.services.documents import RENDERS

    event = make_event()
    first = client.get(f"/events/{event.slug}/programme.pdf")
    assert_pdf(first)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    before = RENDERS["programme"]
    again = client.get(f"/events/{event.slug}/programme.pdf", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    since = client.get(f"/events/{event.slug}/programme.pdf", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    other = client.get(f"/events/{event.slug}/programme.pdf", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.data == first.data
    assert RENDERS["programme"] == before


def test_an_event_update_changes_the_etag_and_renders_the_new_programme(ctx, client, pdf_cache_dir):
    from eventapp.extensions import db
    from eventapp.services.documents import RENDERS
    from eventapp.services.events import update_event

    event = make_event(title="変更前のしおり")
    first = client.get(f"/events/{event.slug}/programme.pdf")
    assert "変更前のしおり" in flat(pdf_text(assert_pdf(first)))
    update_event(event.id, {"title": "変更後のしおり"})
    db.session.commit()
    before = RENDERS["programme"]
    second = client.get(f"/events/{event.slug}/programme.pdf", headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200
    assert second.headers["ETag"] != first.headers["ETag"]
    assert "変更後のしおり" in flat(pdf_text(second.data))
    assert RENDERS["programme"] - before == 1
    assert len(list(pdf_cache_dir.glob("programme-*.pdf"))) == 1  # the old version is gone


def test_programme_renders_are_rate_limited_per_client_but_cached_copies_are_not(app, ctx, client, pdf_cache_dir):
    app.config["PDF_RATE_LIMIT"] = "2/minute"
    events = [make_event() for _ in range(3)]
    ip = {"REMOTE_ADDR": "198.51.100.7"}
    for event in events[:2]:
        assert_pdf(client.get(f"/events/{event.slug}/programme.pdf", environ_base=ip))
    assert client.get(f"/events/{events[2].slug}/programme.pdf", environ_base=ip).status_code == 429
    # Cached versions are still served to that client, and other clients may render.
    for _ in range(5):
        assert_pdf(client.get(f"/events/{events[0].slug}/programme.pdf", environ_base=ip))
    assert_pdf(client.get(f"/events/{events[2].slug}/programme.pdf", environ_base={"REMOTE_ADDR": "198.51.100.8"}))


def test_ticket_pdf_stays_private_and_out_of_the_shared_cache(ctx, client, pdf_cache_dir):
    from eventapp.services.documents import RENDERS

    registration = make_registration(make_event())
    before = RENDERS["ticket"]
    for _ in range(2):
        response = client.get(f"/r/{registration.manage_token}/ticket.pdf")
        assert_pdf(response)
        assert response.headers["Cache-Control"] == "private, no-store"
        assert "ETag" not in response.headers
    assert RENDERS["ticket"] - before == 2
    assert not pdf_cache_dir.exists() or not any(pdf_cache_dir.iterdir())
