"""The Content-Security-Policy really is enforced by Chromium, and the watcher in conftest.py sees it."""

from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import Error

from tests.browser import conftest as browser_conftest

pytestmark = [pytest.mark.browser, pytest.mark.server]


def test_inline_script_is_refused_and_reported(browser, browser_server):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{browser_server.url}/")
        # Playwright may also report the refused script as an error: the console message is what counts.
        with (page.expect_console_message(lambda m: "Content Security Policy" in m.text) as message,
              contextlib.suppress(Error)):
            page.add_script_tag(content="document.body.dataset.injected = 'yes'")
        assert page.evaluate("document.body.dataset.injected") is None  # the script did not run
        reported = list(browser_conftest._csp_violations)
    finally:
        context.close()
        browser_conftest._csp_violations.clear()  # expected here; any other test fails on such a message
    assert "script-src" in message.value.text
    assert reported, "the conftest watcher missed the violation"
