"""Static URLs carry a content hash (?v=), so nginx may cache /static/ for a year (eventapp/static_urls.py)."""

from __future__ import annotations

import hashlib
import os
import re

from flask import url_for

from eventapp import PROJECT_ROOT
from eventapp.static_urls import file_version


def test_static_url_has_hash_of_file(app):
    expected = hashlib.sha256((PROJECT_ROOT / "static/css/app.css").read_bytes()).hexdigest()[:12]
    with app.test_request_context():
        assert url_for("static", filename="css/app.css") == f"/static/css/app.css?v={expected}"
        assert "?v=" not in url_for("static", filename="css/missing.css")


def test_pages_link_versioned_static_files(client):
    html = client.get("/").get_data(as_text=True)
    links = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    assert links, "the home page links its stylesheet"
    assert all(re.search(r"\?v=[0-9a-f]{12}$", link) for link in links), links
    # The versioned URL is still served (the query is ignored by the static view).
    assert client.get(links[0]).status_code == 200


def test_version_changes_with_content_and_refuses_escapes(tmp_path):
    (tmp_path / "a.css").write_text("body{}")
    first = file_version(tmp_path, "a.css")
    (tmp_path / "a.css").write_text("body{color:red}")
    os.utime(tmp_path / "a.css", ns=(1, 1))  # a different mtime even on coarse clocks
    assert first and file_version(tmp_path, "a.css") not in (None, first)
    assert file_version(tmp_path, "../etc/passwd") is None
    assert file_version(tmp_path, ".") is None
