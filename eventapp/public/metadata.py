"""What a shared link and a search engine see of a public event: the page description, Open Graph and
X (Twitter) card tags, and schema.org `Event` data (JSON-LD).

Only what the public page itself shows goes in: never the online join URL, never an organiser's
address. Everything is built from stored data, so nothing here raises on odd values (an empty summary,
no coordinates, a fee of 0).
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from flask_babel import gettext as _

from ..formatting import JST, format_range
from ..models import Event
from ..services.capacity import Availability
from ..services.text import single_line
from ..urls import external_url

SCHEMA = "https://schema.org/"
DESCRIPTION_LENGTH = 120  # what LINE/Facebook/X and search results show of a description

# A more precise schema.org type per kind (search engines read every Event subtype as an Event).
KIND_TYPES = {"online_seminar": "EducationEvent", "onsite_seminar": "EducationEvent",
              "fieldwork": "Event", "matching_session": "BusinessEvent"}
AVAILABILITY = {"open": "InStock", "waitlist": "SoldOut", "closed": "SoldOut", "not_yet_open": "PreOrder"}


def _iso(value: datetime) -> str:
    return value.astimezone(JST).isoformat(timespec="seconds")  # 2026-12-10T19:00:00+09:00


def _shorten(text: str, limit: int = DESCRIPTION_LENGTH) -> str:
    text = " ".join(single_line(text or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def event_description(event: Event) -> str:
    """One line for `<meta name="description">` and the cards: date, place, then the summary."""
    place = _("オンライン") if event.is_online else (event.venue_name or event.venue_address)
    lead = " ・ ".join(part for part in (format_range(event.starts_at, event.ends_at), single_line(place or "")) if part)
    body = event.shown_summary or event.shown_description
    return _shorten(f"{lead} — {body}" if body else lead, DESCRIPTION_LENGTH + len(lead) + 3)


def event_url(event: Event) -> str:
    return external_url("public.event_detail", slug=event.slug)


def _location(event: Event) -> dict:
    if event.is_online:
        # The event page, not the join URL (that one is for confirmed participants only).
        return {"@type": "VirtualLocation", "url": event_url(event)}
    place: dict = {"@type": "Place", "name": single_line(event.venue_name or event.venue_address or "岩手県")}
    if event.venue_address:
        place["address"] = {"@type": "PostalAddress", "streetAddress": single_line(event.venue_address),
                            "addressCountry": "JP"}
    if event.latitude is not None and event.longitude is not None:
        place["geo"] = {"@type": "GeoCoordinates", "latitude": event.latitude, "longitude": event.longitude}
    return place


def event_json_ld(event: Event, availability: Availability) -> dict:
    """schema.org data for the event page (https://developers.google.com/search/docs/appearance/structured-data/event)."""
    organiser = single_line(event.organiser_name or current_app.config["ORGANISER_NAME"])
    data: dict = {
        "@context": "https://schema.org",
        "@type": KIND_TYPES.get(event.kind, "Event"),
        "name": single_line(event.shown_title),
        "description": _shorten(event.shown_summary or event.shown_description, 500),
        "url": event_url(event),
        "startDate": _iso(event.starts_at),
        "endDate": _iso(event.ends_at),
        "inLanguage": "ja",
        "eventAttendanceMode": SCHEMA + ("OnlineEventAttendanceMode" if event.is_online
                                         else "OfflineEventAttendanceMode"),
        "eventStatus": SCHEMA + "EventScheduled",
        "location": _location(event),
        "organizer": {"@type": "Organization", "name": organiser,
                      "url": current_app.config["PUBLIC_BASE_URL"].rstrip("/") + "/"},
    }
    if event.status == "cancelled":
        data["eventStatus"] = SCHEMA + "EventCancelled"
    elif event.previous_starts_at is not None:
        data["eventStatus"] = SCHEMA + "EventRescheduled"
        data["previousStartDate"] = _iso(event.previous_starts_at)
    image = current_app.config.get("SITE_IMAGE_URL")
    if image:
        data["image"] = [image]
    if event.status != "cancelled":
        offer: dict = {"@type": "Offer", "price": event.fee_yen or 0, "priceCurrency": "JPY",
                       "availability": SCHEMA + AVAILABILITY.get(availability.state, "SoldOut"),
                       "url": external_url("public.signup", slug=event.slug)}
        if event.registration_opens_at is not None:
            offer["validFrom"] = _iso(event.registration_opens_at)
        data["offers"] = offer
    return data


def event_card(event: Event) -> dict[str, str]:
    """Open Graph / X card values (https://ogp.me/): title, description, URL and image when one is set."""
    return {"title": single_line(event.shown_title), "description": event_description(event), "url": event_url(event),
            "image": current_app.config.get("SITE_IMAGE_URL") or ""}
