"""Fixtures of the browser tests (tests/demo/*_browser.py): ``browser``, a headless Chromium, and ``page``, a fresh
tab on the launched app (``app_url`` and ``chromium_path`` come from tests/conftest.py). The helpers that drive a
page are in tests/demo/browser_utils.py. Playwright never downloads a browser here: it drives the system Chromium."""
from __future__ import annotations

import os

import pytest

from tests.demo.browser_utils import CHROMIUM_ARGS, TIMEOUT_MS, VIEWPORT


# Module scope, not session: one Chromium per test module, closed before the next module's starts (two live
# sync_playwright() instances in one thread fail: "Sync API inside the asyncio loop").
@pytest.fixture(scope="module")
def browser(chromium_path):
    # Never let Playwright fetch its own browser build.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    """A new page on the app, loaded, with console errors collected in ``page.console_errors``."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    pg.console_errors = []
    pg.on("console", lambda msg: pg.console_errors.append(msg.text) if msg.type == "error" else None)
    pg.goto(app_url, wait_until="domcontentloaded")
    pg.wait_for_selector(".gradio-container", state="visible")
    pg.wait_for_selector("button[role='tab']", state="visible")
    yield pg
    context.close()
