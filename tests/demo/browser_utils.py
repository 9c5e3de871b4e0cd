"""Reusable headless-Chromium harness for browser tests of the app (Playwright, system Chromium only).

Use from a test module:

    from tests.demo.browser_utils import browser, page, open_tab, click_image, screenshot  # noqa: F401  (fixtures)

    @pytest.mark.browser
    def test_my_tab(page, tmp_path):
        open_tab(page, "Self-attention GAN")
        ...
        screenshot(page, tmp_path, "sagan")

``page`` is a fresh tab on the launched app (``app_url`` from conftest.py), already loaded. Playwright never
downloads a browser here: it drives the system Chromium given by conftest's ``chromium_path``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 60_000  # the CPU is shared; Gradio events can queue behind other work


# Module scope, not session: each test module imports this fixture, which gives it its own definition, and
# two live sync_playwright() instances in one thread fail ("Sync API inside the asyncio loop").
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


def open_tab(page, name: str) -> None:
    """Click the top-level tab whose label is ``name`` and wait until it is selected."""
    tab = page.get_by_role("tab", name=name, exact=True)
    tab.click()
    page.wait_for_function(
        "name => [...document.querySelectorAll(\"button[role='tab']\")]"
        ".some(t => t.textContent.trim() === name && t.getAttribute('aria-selected') === 'true')",
        arg=name,
    )


def image_locator(page, elem_id: str):
    """The <img> inside the gr.Image (or similar) with ``elem_id``."""
    return page.locator(f"#{elem_id} img").first


def image_src(page, elem_id: str) -> str:
    loc = image_locator(page, elem_id)
    loc.wait_for(state="visible")
    return loc.get_attribute("src") or ""


def click_image(page, elem_id: str, rel_x: float, rel_y: float) -> tuple[float, float]:
    """Click the image of component ``elem_id`` at a position relative to its rendered box (0..1 each).

    Returns the clicked point in viewport coordinates."""
    loc = image_locator(page, elem_id)
    loc.wait_for(state="visible")
    loc.scroll_into_view_if_needed()  # mouse coordinates are viewport coordinates
    box = loc.bounding_box()
    assert box and box["width"] > 0 and box["height"] > 0, f"image #{elem_id} has no visible box"
    x, y = box["x"] + rel_x * box["width"], box["y"] + rel_y * box["height"]
    page.mouse.click(x, y)
    return x, y


def click_image_pixel(page, elem_id: str, x: float, y: float) -> None:
    """Click pixel (x, y) of the picture that component ``elem_id`` shows, in the picture's own pixels (however large
    it is drawn: Gradio fits it into its box keeping its shape, centred, as its click coordinates assume)."""
    loc = image_locator(page, elem_id)
    loc.wait_for(state="visible")
    loc.scroll_into_view_if_needed()
    box = loc.bounding_box()
    width, height = loc.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    scale = min(box["width"] / width, box["height"] / height)
    left, top = box["x"] + (box["width"] - width * scale) / 2, box["y"] + (box["height"] - height * scale) / 2
    page.mouse.click(left + (x + 0.5) * scale, top + (y + 0.5) * scale)


def wait_for_image_change(page, elem_id: str, old_src: str, timeout_ms: int = TIMEOUT_MS) -> str:
    """Wait until the image of ``elem_id`` shows a different file than ``old_src``; return the new src."""
    page.wait_for_function(
        "([id, old]) => { const i = document.querySelector('#' + id + ' img');"
        " return i && i.getAttribute('src') && i.getAttribute('src') !== old && i.complete; }",
        arg=[elem_id, old_src], timeout=timeout_ms,
    )
    return image_src(page, elem_id)


def wait_for_images_loaded(page, selector: str, count: int | None = None, timeout_ms: int = TIMEOUT_MS) -> int:
    """Wait until every <img> matching ``selector`` (at least ``count`` of them, if given) has loaded."""
    page.wait_for_function(
        "([sel, n]) => { const imgs = [...document.querySelectorAll(sel)];"
        " return imgs.length >= (n || 1) && imgs.every(i => i.complete && i.naturalWidth > 0); }",
        arg=[selector, count], timeout=timeout_ms,
    )
    return page.locator(selector).count()


def screenshot(page, tmp_path: Path, name: str, full_page: bool = True) -> Path:
    """Save a PNG of the page under the test's tmp dir and return its path (kept for a human to look at)."""
    path = Path(tmp_path) / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000, "screenshot is suspiciously small (blank page?)"
    return path
