"""Reusable helpers for headless-Chromium tests of the app (Playwright, system Chromium only).

Use from a test module (the ``browser`` and ``page`` fixtures come from tests/demo/conftest.py):

    from tests.demo import browser_utils as ui

    @pytest.mark.browser
    def test_my_tab(page, tmp_path):
        ui.open_tab(page, "Self-attention GAN")
        ...
        ui.screenshot(page, tmp_path, "sagan")

``page`` is a fresh tab on the launched app (``app_url`` from tests/conftest.py), already loaded. Playwright never
downloads a browser here: conftest's ``browser`` drives the system Chromium given by ``chromium_path``.
"""
from __future__ import annotations

from pathlib import Path

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 1000}
TIMEOUT_MS = 60_000  # the CPU is shared; Gradio events can queue behind other work


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


def wait_for_text(page, selector: str, needle: str) -> str:
    """Wait until the element ``selector`` shows ``needle`` in its text; return that text."""
    page.wait_for_function("([sel, needle]) => (document.querySelector(sel) || {}).innerText?.includes(needle)",
                           arg=[selector, needle], timeout=TIMEOUT_MS)
    return page.locator(selector).inner_text()


def wait_for_image_change(page, elem_id: str, old_src: str, timeout_ms: int = TIMEOUT_MS) -> str:
    """Wait until the image of ``elem_id`` shows a different file than ``old_src``; return the new src."""
    page.wait_for_function(
        "([id, old]) => { const i = document.querySelector('#' + id + ' img');"
        " return i && i.getAttribute('src') && i.getAttribute('src') !== old && i.complete; }",
        arg=[elem_id, old_src], timeout=timeout_ms,
    )
    return image_src(page, elem_id)


def download_url(page, button_id: str) -> str:
    """The URL of the file that the download button ``button_id`` holds (it is clicked: the browser downloads it)."""
    with page.expect_download() as download:
        page.locator(f"#{button_id}").click()
    return download.value.url


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
