"""Headless Debian Chromium (driven by Playwright) against a real gunicorn server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET
from tests.live_server import LiveServer, start_server

CHROMIUM = Path("/usr/bin/chromium")
# Quiet, offline-friendly Chromium: no background fetches that would hit the network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# The PostgreSQL run keeps its own screenshots: both runs may go at once (scripts/run-tests.sh).
ARTIFACTS = (Path(__file__).resolve().parent.parent.parent / "test-artifacts"
             / ("postgresql" if os.environ.get("TEST_DATABASE_URL") else ""))
# Console messages Chromium prints when the Content-Security-Policy blocks something (inline script or
# style, a foreign source, a worker): collected from every context any test opens.
_csp_violations: list[str] = []


@pytest.fixture(scope="session", autouse=True)
def _watch_csp_violations():
    """Every browser context of the run reports CSP refusals into `_csp_violations`."""
    from playwright.sync_api import Browser

    original = Browser.new_context

    def new_context(self, *args, **kwargs):
        context = original(self, *args, **kwargs)
        context.on("console", lambda message: _csp_violations.append(f"{message.type}: {message.text}")
                   if "Content Security Policy" in message.text else None)
        return context

    Browser.new_context = new_context
    yield
    Browser.new_context = original


@pytest.fixture(autouse=True)
def _no_csp_violations():
    _csp_violations.clear()
    yield
    assert not _csp_violations, "the Content-Security-Policy blocked something:\n" + "\n".join(_csp_violations)


@pytest.fixture(scope="session")
def browser_server(app, database_url, tmp_path_factory) -> LiveServer:
    log_path = tmp_path_factory.mktemp("gunicorn") / "browser-server.log"
    server = start_server(database_url, secret_key=TEST_SECRET, workers=2, log_path=log_path)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install the Debian 'chromium' package to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser):
    """A fresh 375×812 Japanese-locale page (an iPhone-sized screen)."""
    context = browser.new_context(viewport={"width": 375, "height": 812}, locale="ja-JP",
                                  timezone_id="Asia/Tokyo", device_scale_factor=2, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
