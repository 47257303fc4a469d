"""PDF documents: content (extracted text), fonts, page counts, QR codes, the restricted fetcher.

Each test saves its PDF and a PNG of the first page under test-artifacts/pdf/ for a human look.
"""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from eventapp.extensions import db
from eventapp.services import documents
from eventapp.services.errors import ValidationFailed
from tests.conftest import future, make_event, make_registration
from tests.pdf_support import decode_qr_codes, flat, page_count, pdf_fonts, pdf_text, pdf_words, save_artifact

EVIL_DESCRIPTION = ('<img src="http://example.com/x.png"> <img src="file:///etc/passwd">\n'
                    '<link rel="stylesheet" href="http://example.com/evil.css"><b>太字</b>')


def fieldwork(**overrides):
    start = future(days=40, hour=10)
    day2 = start + timedelta(days=1)
    data = {
        "title": "地域と温泉を楽しみながら考える 遠恋複業フィールドワーク",
        "summary": "夏油温泉に泊まり、地域課題に取り組む1泊2日。",
        "starts_at": start, "ends_at": day2 + timedelta(hours=2),
        "meeting_point": "JR北上駅 東口(送迎バスあり)", "access": "東京駅から東北新幹線で北上駅まで約2時間40分。",
        "what_to_bring": "着替え、洗面用具、歩きやすい靴", "organiser_name": "岩手県 遠恋複業課 事務局",
        "organiser_phone": "019-629-0000", "capacity": 200,
        "days": [
            {"starts_at": start, "ends_at": start + timedelta(hours=10), "items": [
                {"starts_at": time(10, 0), "title": "北上駅 集合・送迎バスで移動", "place": "JR北上駅 東口"},
                {"starts_at": time(13, 0), "ends_at": time(14, 30), "title": "事業継承ストーリー"}]},
            {"starts_at": day2, "ends_at": day2 + timedelta(hours=2), "items": [
                {"starts_at": time(9, 0), "title": "グループワークと発表"}]},
        ],
        "questions": [{"key": "bus", "kind": "yesno", "label": "送迎バスを利用しますか"},
                      {"key": "room", "kind": "text", "label": "お部屋のご希望"},
                      {"key": "dietary", "kind": "text", "label": "食物アレルギー・食事制限"}],
    }
    data.update(overrides)
    return make_event(**data)


def assert_japanese_font(pdf: bytes) -> None:
    fonts = pdf_fonts(pdf)
    assert "IPAexGothic" in fonts
    # Every font is embedded (emb column "yes"): nothing depends on the reader's fonts.
    rows = [line for line in fonts.splitlines()[2:] if line.strip()]
    assert rows and all(" yes " in line for line in rows), fonts


def test_programme_has_every_section_and_a_qr_code_to_the_event_page(ctx):
    event = fieldwork()
    result = documents.programme_pdf(event)
    save_artifact(result.pdf, "programme")
    text = flat(pdf_text(result.pdf))
    for expected in ("しおり", "遠恋複業フィールドワーク", "JR北上駅東口(送迎バスあり)", "プログラム", "1日目", "2日目",
                     "事業継承ストーリー", "13:00〜14:30", "アクセス", "持ち物", "着替え、洗面用具", "019-629-0000",
                     "岩手県遠恋複業課事務局", "当日の連絡先"):
        assert expected in text, expected
    assert_japanese_font(result.pdf)
    assert result.pages == page_count(result.pdf) and 1 <= result.pages <= 2
    assert decode_qr_codes(result.pdf) == [f"http://testserver.local/events/{event.slug}"]
    assert "1/" in text  # page counter footer


def test_programme_with_empty_optional_fields_renders(ctx):
    event = make_event(title="オンライン説明会", kind="online_seminar", venue_name="", venue_address="",
                       organiser_email="", organiser_name="")
    result = documents.programme_pdf(event)
    save_artifact(result.pdf, "programme-minimal")
    text = flat(pdf_text(result.pdf))
    assert "オンライン説明会" in text and "オンライン" in text
    assert app_organiser() in text  # falls back to the configured organiser
    assert result.pages == 1


def app_organiser() -> str:
    from flask import current_app

    return flat(current_app.config["ORGANISER_NAME"])


def test_staff_html_in_texts_is_printed_as_text_and_never_fetched(ctx):
    event = fieldwork(description=EVIL_DESCRIPTION, access='<img src="https://example.org/map.png">')
    fetcher = documents.make_fetcher()
    result = documents.render_document("programme", fetcher=fetcher, event=event, event_url="https://x.example/",
                                       qr=documents.qr_data_uri("https://x.example/"), organiser="主催",
                                       printed_at="now")
    text = pdf_text(result.pdf)
    assert '<img src="http://example.com/x.png">' in text  # escaped, so shown as typed
    assert "<b>太字</b>" in text
    assert fetcher.refused == []  # nothing was even attempted
    assert fetcher.fetched == ["data:image/svg+xml;base64"]  # only our own QR code


def test_restricted_fetcher_refuses_other_hosts_and_files_and_the_render_goes_on(ctx, app):
    static = app.static_folder
    html = f"""<html><body><p>取得テスト</p>
      <img src="http://example.com/x.png"><img src="file:///etc/passwd">
      <img src="file://{static}/../eventapp/config.py">
      <link rel="stylesheet" href="https://evil.example/x.css">
      <object data="http://testserver.local/static/css/app.css"></object>
      <img src="{documents.qr_data_uri('https://testserver.local/fetch-ok')}"><img src="data:text/html;base64,PGI+aGk8L2I+">
    </body></html>"""
    fetcher = documents.make_fetcher()
    result = documents.render_html(html, "programme", fetcher=fetcher)
    assert "取得テスト" in pdf_text(result.pdf)
    assert set(fetcher.refused) == {"http://example.com/x.png", "file:///etc/passwd",
                                    f"file://{static}/../eventapp/config.py", "https://evil.example/x.css",
                                    "data:text/html;base64,PGI+aGk8L2I+"}
    # Our own static files are served from disk (no network), and generated images are allowed.
    assert "http://testserver.local/static/css/app.css" in fetcher.fetched
    assert "data:image/svg+xml;base64" in fetcher.fetched
    assert decode_qr_codes(result.pdf) == ["https://testserver.local/fetch-ok"]


def test_characters_missing_from_the_font_become_geta_not_boxes():
    assert documents.printable("岩手 花子😀") == "岩手 花子〓"
    assert documents.printable("👨\u200d👩\u200d👧 ok") == "〓〓〓 ok"  # joiners dropped, no box per part
    assert documents.printable("髙橋 ①ｶﾅ") == "髙橋 ①ｶﾅ"  # all in IPAex


def kana_number(i: int) -> str:
    """Digits as kana (ふりがな accepts kana only), keeping 五十音 order = numeric order."""
    return "".join("あいうえおかきくけこ"[int(d)] for d in f"{i:03d}")


def roster_people(event, furigana_names):
    for i, (name, kana) in enumerate(furigana_names):
        make_registration(event, name=name, furigana=kana, prefecture="岩手県" if i % 2 else "東京都",
                          answers={"bus": "yes" if i % 2 == 0 else "no", "dietary": "えび" if i == 0 else ""})


PEOPLE = [("渡辺 翔", "わたなべ しょう"), ("阿部 彩", "あべ あや"), ("及川 大輔", "おいかわ だいすけ"),
          ("菊池 美咲", "キクチ ミサキ"), ("佐藤 花子", "さとう はなこ")]


def test_reception_roster_in_gojuon_order_with_header_footer_and_day_columns(ctx):
    event = fieldwork()
    roster_people(event, PEOPLE)
    result = documents.roster_pdf(event, "reception", "kana")
    save_artifact(result.pdf, "roster-reception")
    text = pdf_text(result.pdf)
    compact = flat(text)
    order = [compact.index(flat(name)) for name in ("阿部 彩", "及川 大輔", "菊池 美咲", "佐藤 花子", "渡辺 翔")]
    assert order == sorted(order)  # katakana furigana sorts with hiragana
    for expected in ("受付用", event.title.replace(" ", ""), "印刷日時", "五十音順・5名", "No", "氏名", "ふりがな",
                     "居住地", "備考", "1日目", "2日目", "バス:はい", "バス:いいえ", "★食事:えび", "★は重要な回答"):
        assert expected in compact, expected
    assert "1/1" in compact  # the page counter
    assert_japanese_font(result.pdf)


def test_reception_roster_has_phone_and_short_non_empty_answers(ctx):
    """受付用 備考 names answers by a short word and skips empty ones (the full question on every
    row filled the cell); the phone column is for calling the ones who have not arrived."""
    event = fieldwork()
    for i, (name, kana) in enumerate(PEOPLE[:3]):
        make_registration(event, name=name, furigana=kana, phone=f"090-1234-000{i}",
                          answers={"bus": "yes" if i == 0 else "no", "dietary": "そば" if i == 1 else ""})
    result = documents.roster_pdf(event, "reception", "kana")
    save_artifact(result.pdf, "roster-reception-phone")
    compact = flat(pdf_text(result.pdf))
    assert "電話番号" in compact
    for i in range(3):
        assert f"090-1234-000{i}" in compact
    assert compact.count("バス:") == 3
    assert compact.count("食事:") == 1  # the two empty dietary answers are left out
    assert "★食事:そば" in compact  # the allergy is marked 重要
    for full_question in ("送迎バスを利用しますか", "食物アレルギー・食事制限"):
        assert full_question not in compact
    assert "yes" not in compact and "no:" not in compact.replace("No", "")


def test_short_label():
    assert documents.short_label("dietary", "食物アレルギー・食事制限") == "食事"
    assert documents.short_label("q1", "Tシャツのサイズ(当日お渡し)?") == "Tシャツのサイズ"
    assert documents.short_label("q2", "懇親会に参加しますか？") == "懇親会に参加"
    assert documents.short_label("q3", "お住まいの市区町村をご記入ください") == "お住まいの市区…"
    assert documents.short_label(None, "自由記述") == "自由記述"


def test_roster_columns_line_up_under_their_headers_whatever_the_name_length(ctx):
    """氏名・ふりがな・居住地 share one printed line per row (blanks and tabs place the entries):
    each entry must start exactly under its column header, row after row, also next to a name
    long enough to wrap (that row keeps a block per column)."""
    event = fieldwork()
    people = [("林 一", "はやし はじめ"), ("長谷川 由紀子", "はせがわ ゆきこ"), ("佐藤 花子", "さとう はなこ"),
              ("勅使河原 三郎兵衛左衛門之助", "てしがわら さぶろうべえさえもんのすけ"), ("Li Wei", "りー うぇい")]
    roster_people(event, people)
    result = documents.roster_pdf(event, "reception", "kana")
    save_artifact(result.pdf, "roster-alignment", dpi=100)
    words = pdf_words(result.pdf)
    long_name = [y for word, x, y, _ in words if word.startswith(("勅使河原", "三郎", "門之助", "衛門", "兵衛", "衛左", "左衛"))]
    assert len(set(long_name)) == 2  # the long name wraps onto a second line
    header = {word: x for word, x, _, _ in words if word in ("氏名", "ふりがな", "居住地")}
    surname = [x for word, x, _, _ in words if word in ("林", "長谷川", "佐藤", "勅使河原", "Li")]
    kana = [x for word, x, _, _ in words if word in ("はやし", "はせがわ", "さとう", "てしがわら", "りー")]
    prefecture = [x for word, x, _, _ in words if word in ("東京都", "岩手県")]
    assert len(surname) == len(kana) == len(prefecture) == len(people)
    for xs, column in ((surname, "氏名"), (kana, "ふりがな"), (prefecture, "居住地")):
        assert max(abs(x - header[column]) for x in xs) < 0.3, (column, header[column], xs)  # points


def test_signup_order_follows_registration_order(ctx):
    event = fieldwork()
    roster_people(event, PEOPLE)
    text = flat(pdf_text(documents.roster_pdf(event, "reception", "signup").pdf))
    order = [text.index(flat(name)) for name, _ in PEOPLE]
    assert order == sorted(order)
    assert "申込順" in text


def test_single_day_roster_has_one_tick_column(ctx):
    event = make_event()
    make_registration(event)
    text = flat(pdf_text(documents.roster_pdf(event).pdf))
    assert "受付" in text and "1日目" not in text


@pytest.mark.parametrize("preset,title,header", [("bus", "バス名簿", "電話番号"), ("lodging", "宿泊名簿", "食事の配慮"),
                                                 ("insurance", "保険名簿", "メールアドレス")])
def test_every_preset_renders_with_its_columns(ctx, preset, title, header):
    event = fieldwork()
    roster_people(event, PEOPLE)
    result = documents.roster_pdf(event, preset, "kana")
    save_artifact(result.pdf, f"roster-{preset}")
    text = flat(pdf_text(result.pdf))
    assert title in text and header in text and "及川大輔" in text


def test_bus_roster_lists_riders_only(ctx):
    event = fieldwork()
    roster_people(event, PEOPLE)  # people 0, 2, 4 ride
    text = flat(pdf_text(documents.roster_pdf(event, "bus", "signup").pdf))
    assert "渡辺翔" in text and "及川大輔" in text and "佐藤花子" in text
    assert "阿部彩" not in text and "菊池美咲" not in text
    assert "送迎バス利用者のみ" in text and "乗車" in text


def test_roster_rows_hold_the_confirmed_people_their_answers_in_order_and_the_staff_note(ctx):
    """roster_data reads plain column rows (not ORM objects): answers keep their order, an answer
    whose question was deleted keeps its label, other events and other statuses stay out."""
    from eventapp.models import Answer

    event = fieldwork()
    other = fieldwork(title="別のイベント")
    first = make_registration(event, name="岩手 花子", furigana="いわて はなこ", prefecture="岩手県",
                              answers={"bus": "yes", "room": "個室", "dietary": "えび"})
    first.staff_note = "車椅子で来場"
    make_registration(event, name="盛岡 太郎", furigana="もりおか たろう", answers={"bus": "no"})
    cancelled = make_registration(event, name="一関 次郎", furigana="いちのせき じろう")
    cancelled.status = "cancelled"
    make_registration(other, name="宮古 三郎", furigana="みやこ さぶろう")
    # The room question is deleted: its answer keeps its label and loses its question.
    db.session.query(Answer).filter_by(registration_id=first.id, question_label="お部屋のご希望").update(
        {"question_id": None})
    db.session.commit()

    data = documents.roster_data(event, "reception", "kana")
    assert [c["label"] for c in data.columns] == ["氏名", "ふりがな", "居住地", "電話番号", "備考"]
    # Short labels, the 重要 dietary answer first; the deleted question keeps its (short) label.
    assert data.rows == [
        ["岩手 花子", "いわて はなこ", "岩手県", data.rows[0][3], "★食事: えび / バス: はい / お部屋のご希望: 個室 / 車椅子で来場"],
        ["盛岡 太郎", "もりおか たろう", data.rows[1][2], data.rows[1][3], "バス: いいえ"],
    ]
    bus = documents.roster_data(event, "bus", "signup")
    assert [row[0] for row in bus.rows] == ["岩手 花子"] and bus.note == "送迎バス利用者のみ"


def test_unknown_preset_or_sort_is_a_validation_error(ctx):
    event = make_event()
    with pytest.raises(ValidationFailed):
        documents.roster_pdf(event, "everything")
    with pytest.raises(ValidationFailed):
        documents.roster_pdf(event, "reception", "random")
    with pytest.raises(ValidationFailed):
        documents.badges_pdf(event, "random")


def test_long_roster_repeats_the_table_header_and_numbers_pages(ctx):
    event = fieldwork()
    for i in range(70):
        make_registration(event, name=f"参加者 {i:03d}", furigana=f"さんかしゃ {kana_number(i)}")
    result = documents.roster_pdf(event, "reception", "signup", parallel=False)
    pages = page_count(result.pdf)
    assert pages == result.pages >= 2
    for page in range(1, pages + 1):
        text = pdf_text(result.pdf, page)
        assert "ふりがな" in text and "受付用" in text  # header on every page
        assert f"{page}/{pages}" in flat(text)
    everything = flat(pdf_text(result.pdf))
    assert all(f"参加者{i:03d}" in everything for i in range(70))
    # Row numbers share the name's line but stay right-aligned (1–9 and 10–30 on the first page).
    numbers = [(word, right) for word, x, _, right in pdf_words(result.pdf, 1) if word.isdigit() and x < 60]
    assert [word for word, _ in numbers] == [str(i) for i in range(1, 31)]
    assert max(r for _, r in numbers) - min(r for _, r in numbers) < 0.6  # points


def test_parallel_halves_give_the_same_roster_with_continuous_page_numbers(ctx):
    event = fieldwork()
    for i in range(70):
        make_registration(event, name=f"参加者 {i:03d}", furigana=f"さんかしゃ {kana_number(i)}")
    single = documents.roster_pdf(event, "reception", "signup", parallel=False)
    try:
        joined = documents.roster_pdf(event, "reception", "signup", parallel=True)
    finally:
        documents.shutdown_pool()  # no worker processes left behind for the rest of the suite
    assert joined.pages == page_count(joined.pdf) == single.pages
    for page in range(1, joined.pages + 1):
        assert f"{page}/{joined.pages}" in flat(pdf_text(joined.pdf, page))
    assert flat(pdf_text(joined.pdf)).count("参加者") == 70
    assert_japanese_font(joined.pdf)


def test_empty_roster_says_so(ctx):
    event = make_event()
    result = documents.roster_pdf(event)
    assert "参加確定の方はまだいません" in flat(pdf_text(result.pdf)) and result.pages == 1


def test_hostile_data_does_not_break_any_document(ctx):
    """Long names, emoji, 100 questions with very long answers, HTML in answers."""
    questions = [{"key": f"q{i}", "kind": "text", "label": f"質問{i} " + "とても長い設問文" * 5} for i in range(100)]
    event = fieldwork(title="長いタイトル" * 20 + "😀", questions=questions, description="説明" * 3000,
                      what_to_bring="x" * 2000, meeting_point="集合" * 300)
    answers = {f"q{i}": ("回答😀" + "あ" * 1500 + '<img src="http://example.com/a.png">') for i in range(100)}
    registration = make_registration(event, name="寿限無寿限無五劫の擦り切れ海砂利水魚の水行末雲来末風来末食う寝る処に住む処😀👨‍👩‍👧",
                                     furigana="じゅげむ" * 20, prefecture="", answers=answers)
    make_registration(event, name="A" * 100, furigana="えー", answers={"q1": "https://example.com/" + "a" * 900})
    documents_to_check = {
        "hostile-programme": documents.programme_pdf(event),
        "hostile-ticket": documents.ticket_pdf(registration),
        "hostile-roster": documents.roster_pdf(event, "reception", "kana"),
        "hostile-lodging": documents.roster_pdf(event, "lodging", "kana"),
        "hostile-badges": documents.badges_pdf(event),
    }
    for name, result in documents_to_check.items():
        save_artifact(result.pdf, name)
        text = pdf_text(result.pdf)
        assert "寿限無" in text or "じゅげむ" in text or "長いタイトル" in text, name
        assert "😀" not in text  # replaced by 〓 rather than printed as a box
        assert result.refused == [], name
        assert_japanese_font(result.pdf)
    # One registration per row, so a roster of two people stays on one page despite 100 long answers.
    assert documents_to_check["hostile-roster"].pages == 1
    assert documents_to_check["hostile-badges"].pages == 1
    assert documents_to_check["hostile-ticket"].pages == 1


def test_ticket_has_the_participant_the_event_and_a_scannable_ticket_code(ctx):
    event = fieldwork()
    registration = make_registration(event, name="岩手 花子", furigana="いわて はなこ")
    result = documents.ticket_pdf(registration)
    save_artifact(result.pdf, "ticket")
    text = flat(pdf_text(result.pdf))
    for expected in ("受付票", "岩手花子様", "いわてはなこ", "遠恋複業フィールドワーク", "かんたはうす",
                     registration.ticket_code, f"/r/{registration.manage_token}"):
        assert flat(expected) in text, expected
    assert decode_qr_codes(result.pdf) == [registration.ticket_code]
    assert result.pages == 1
    assert_japanese_font(result.pdf)


def test_ticket_only_for_confirmed_registrations(ctx):
    event = make_event(capacity=1)
    make_registration(event)
    waiting = make_registration(event)
    assert waiting.status == "waitlisted"
    with pytest.raises(ValidationFailed):
        documents.ticket_pdf(waiting)


def test_badges_ten_per_page_with_furigana_and_prefecture(ctx):
    event = fieldwork()
    for i in range(12):
        make_registration(event, name=f"名札 太郎{i:02d}", furigana=f"なふだ たろう{kana_number(i)}", prefecture="宮城県")
    cancelled = make_registration(event, name="取消 次郎", furigana="とりけし じろう")
    from eventapp.services.registration import cancel

    cancel(cancelled.id, by="staff")
    db.session.commit()
    result = documents.badges_pdf(event)
    save_artifact(result.pdf, "badges", dpi=50)
    assert result.pages == page_count(result.pdf) == 2
    first, second = flat(pdf_text(result.pdf, 1)), flat(pdf_text(result.pdf, 2))
    assert first.count("宮城県") == 10 and second.count("宮城県") == 2
    assert "なふだたろうあああ" in first and "名札太郎00" in first and "名札太郎11" in second
    assert "取消" not in first + second  # cancelled people get no badge
    assert_japanese_font(result.pdf)


# Names as people really write them (issue 15, item 13): a JIS X 0213 / surrogate-pair kanji, 髙 and 﨑
# (IBM extensions), 德, 邉 and 邊, the compatibility ideograph 隆 U+F9DC and 葛 with an ideographic
# variation selector (葛󠄀, U+845B U+E0100).
RARE_NAMES = [("𠮷田 花子", "よしだ はなこ"), ("髙橋 﨑子", "たかはし さきこ"), ("德永 邉", "とくなが ほとり"),
              ("渡邊 \uf9dc", "わたなべ たかし"), ("葛\U000e0100城 太郎", "かつらぎ たろう")]


def assert_every_glyph_drawn(pdf: bytes, names: list[str]) -> None:
    """The names come back from the PDF's text, no 〓 was put in, and a real glyph exists for every
    character (in IPAex Gothic or in the fallback IPAmj明朝, both embedded), so nothing is tofu."""
    from fontTools.ttLib import TTFont

    text = flat(pdf_text(pdf))
    for name in names:
        assert flat(name) in text, (name, text[:400])
    assert "〓" not in text
    fonts = pdf_fonts(pdf)
    assert "IPAexGothic" in fonts and "IPAmjMincho" in fonts, fonts
    assert all(" yes " in line for line in fonts.splitlines()[2:] if line.strip()), fonts
    covered: set[int] = set()
    for path in (documents.FONT_FILE, documents.FALLBACK_FONT_FILE):
        with TTFont(str(path), lazy=True) as font:
            covered |= set(font.getBestCmap())
    missing = {ch for name in names for ch in flat(name) if ord(ch) not in covered and ord(ch) < 0xE0100}
    assert not missing, missing
    # 葛󠄀 keeps its selector, right after 葛 (text extraction gives the name back as registered)
    assert "葛\U000e0100城" in text


def test_rare_name_kanji_print_on_rosters_and_badges(ctx):
    event = fieldwork()
    for name, kana in RARE_NAMES:
        make_registration(event, name=name, furigana=kana)
    names = [name for name, _ in RARE_NAMES]
    roster = documents.roster_pdf(event, "reception", "kana").pdf
    save_artifact(roster, "roster-rare-kanji", dpi=100)
    assert_every_glyph_drawn(roster, names)
    badges = documents.badges_pdf(event).pdf
    save_artifact(badges, "badges-rare-kanji", dpi=100)
    assert_every_glyph_drawn(badges, names)
    assert "\uf9dc" in pdf_text(badges)  # the compatibility ideograph as registered, not folded to 隆 U+9686


def _first_page_pixels(pdf: bytes) -> bytes:
    import subprocess

    return subprocess.run(["pdftoppm", "-gray", "-r", "40", "-f", "1", "-l", "1", "-"], input=pdf,
                          capture_output=True, check=True).stdout


def test_ideographic_variation_sequence_draws_the_variant_glyph(ctx):
    """葛 + U+E0100 (the 葛 of a family register) is drawn as its own glyph, not as plain 葛: IPAex has the
    Adobe-Japan1 sequence in its cmap format 14 and Pango/HarfBuzz apply it."""
    def page(name: str) -> bytes:
        html = f'<html><body><p style="font-size:40pt">{name}</p></body></html>'
        return documents.render_html(html, "roster").pdf

    plain, variant = page("葛城 太郎"), page("葛\U000e0100城 太郎")
    assert "葛\U000e0100城" in pdf_text(variant)
    assert _first_page_pixels(plain) != _first_page_pixels(variant)
    assert _first_page_pixels(plain) == _first_page_pixels(page("葛城 太郎"))  # rendering is deterministic


def test_printable_keeps_what_the_fallback_font_draws():
    assert documents.printable("𠮷田 﨑 葛\U000e0100 \uf9dc") == "𠮷田 﨑 葛\U000e0100 \uf9dc"
    assert documents.printable("岩手\U0010fffd") == "岩手〓"  # in neither font


def test_emergency_contacts_stay_on_the_programmes_last_page_never_alone(ctx):
    """However long the programme, 緊急連絡先 is printed with what comes before it (issue 15, item 15)."""
    start = future(days=40, hour=9)
    checked = 0
    for n in range(14, 40, 2):  # programme lengths that end a page at every point of the closing part
        items = [{"starts_at": time(9 + k // 4, (k % 4) * 15), "title": f"プログラム項目{k + 1:02d} 地域の方との意見交換",
                  "place": "会議室"} for k in range(n)]
        event = make_event(starts_at=start, ends_at=start + timedelta(hours=10), organiser_phone="019-629-0000",
                           what_to_bring="筆記用具", days=[{"starts_at": start, "ends_at": start + timedelta(hours=10),
                                                            "items": items}])
        pdf = documents.programme_pdf(event).pdf
        pages = page_count(pdf)
        last = flat(pdf_text(pdf, page=pages))
        assert "緊急連絡先" in last and "019-629-0000" in last, n
        if pages > 1:
            checked += 1
            # Not alone: the page also holds the end of the programme or the section before it.
            assert "プログラム項目" in last or "持ち物" in last, (n, last[:200])
            assert "緊急連絡先" not in flat(pdf_text(pdf, page=pages - 1)), n
    assert checked  # some lengths did run onto a second page
