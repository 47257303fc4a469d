"""`/robots.txt` and `/sitemap.xml`: what search engines may crawl, and every public event page.

Pages behind a personal token (/r/…, /my/…) stay crawlable but answer `noindex` themselves (a robots.txt
Disallow would hide that instruction and let a leaked link be listed by its URL alone); staff, door and
API paths are disallowed outright.
"""

from __future__ import annotations

from flask import Response, render_template
from sqlalchemy import select

from ..extensions import db
from ..models import Event
from ..urls import external_url
from . import bp

SITEMAP_LIMIT = 50_000  # the sitemap protocol's maximum URLs per file
DISALLOWED = ("/staff/", "/checkin/", "/api/")


@bp.get("/robots.txt")
def robots_txt():
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in DISALLOWED), "",
             f"Sitemap: {external_url('public.sitemap_xml')}", ""]
    return Response("\n".join(lines), content_type="text/plain; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600"})


@bp.get("/sitemap.xml")
def sitemap_xml():
    events = db.session.execute(
        select(Event.slug, Event.updated_at).where(Event.status.in_(("published", "cancelled")))
        .order_by(Event.starts_at.desc()).limit(SITEMAP_LIMIT - 2)
    ).all()
    body = render_template("public/sitemap.xml", events=events)
    return Response(body, content_type="application/xml; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600"})
