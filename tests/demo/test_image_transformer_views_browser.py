"""The Image Transformer's "Your own drawing" view in headless Chromium (tiny random 12x12 models): paint over the
picture with the mouse, complete it, see the painted cells hidden, then inspect a completion: every head of every
layer at once and what the chosen pixel could not see."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from demo import image_transformer_tab as tab
from tests.demo import browser_utils as ui
from tests.demo.test_image_transformer_tab import SIZE, sheet_images, tiny_models  # noqa: F401  (fixture)
from tests.demo.test_image_transformer_tab_browser import cell_centre

pytestmark = pytest.mark.browser

STATUS = "#imt-mask-status"


def text_of(page, selector: str) -> str:
    return page.locator(selector).inner_text()


def picture_box(page) -> dict:
    """Where the editor draws its picture, in viewport coordinates: centred on its canvas, at the zoom it shows."""
    canvas = page.locator("#imt-editor canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    zoom = page.evaluate("""() => {
      const el = [...document.querySelectorAll('#imt-editor *')]
        .find(e => e.children.length === 0 && /^\\d+%$/.test(e.textContent.trim()));
      return el ? parseFloat(el.textContent) / 100 : null;
    }""")
    assert zoom, "the editor shows no zoom level"
    side = tab.EXAMPLE_PX * zoom
    return {"x": box["x"] + (box["width"] - side) / 2, "y": box["y"] + (box["height"] - side) / 2, "side": side}


def paint(page, box: dict, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A brush stroke from ``start`` to ``end`` (x, y as fractions of the picture's side)."""
    page.locator("#imt-editor button[aria-label='Brush']").click()
    page.mouse.move(box["x"] + start[0] * box["side"], box["y"] + start[1] * box["side"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["side"], box["y"] + end[1] * box["side"], steps=25)
    page.mouse.up()


def hidden_count(status: str) -> int:
    match = re.search(r"Hid (\d+) of", status)
    assert match, status
    return int(match.group(1))


def shown_cells(page, count: int) -> list[np.ndarray]:
    """The ``count`` images of the picture of the drawing, the original and the completions as the browser got it,
    one colour per grid cell each."""
    body = page.request.get(ui.image_src(page, "imt-mask-completions")).body()
    return sheet_images(np.asarray(Image.open(io.BytesIO(body)).convert("RGB")), count)


def test_paint_a_mask_complete_it_and_inspect_a_completion(page, tiny_models, tmp_path):  # noqa: F811
    ui.open_tab(page, "Image Transformer")
    page.get_by_role("tab", name="Your own drawing", exact=True).click()
    # The page-load event puts the example picture in the editor and the hint in the status, together.
    page.wait_for_function("([s, hint]) => document.querySelector(s).innerText.includes(hint)",
                           arg=[STATUS, tab.EXAMPLE_NOTE[:40]], timeout=120_000)

    # 1. Nothing painted yet: a clear error, and the page keeps working.
    page.locator("#imt-mask-btn").click()
    page.get_by_text("No mask painted").first.wait_for(state="visible", timeout=120_000)

    # 2. Paint a stroke across the top rows and one down the right side with the mouse, and complete.
    box = picture_box(page)
    paint(page, box, (0.1, 0.12), (0.9, 0.12))
    paint(page, box, (0.8, 0.45), (0.8, 0.75))
    page.locator("#imt-mask-btn").click()
    page.wait_for_function("s => /Hid \\d+ of/.test(document.querySelector(s).innerText)", arg=STATUS,
                           timeout=120_000)
    status = text_of(page, STATUS)
    ui.wait_for_images_loaded(page, "#imt-mask-completions img", 1)
    drawing = (shown_cells(page, 2 + 4)[0] == tab.UNKNOWN).all(-1)
    assert hidden_count(status) == int(drawing.sum())
    assert drawing[1, 3:9].all(), drawing.astype(int)  # the stroke across row 1 (12% down)
    assert drawing[6:8, 9].all(), drawing.astype(int)  # the stroke down column 9 (80% across)
    assert not drawing[4:, :6].any(), drawing.astype(int)  # the bottom left was left alone
    page.locator("#imt-unseen img").wait_for(state="visible")
    page.locator("#imt-head-stats").get_by_text("entropy (bits)").first.wait_for(state="visible")

    # 3. Inspect a completion: the grid of every head appears, and a painted pixel says what it could not see.
    ui.click_image_pixel(page, "imt-mask-completions", *cell_centre(2))
    page.wait_for_function("() => /was (hidden|visible)/.test(document.querySelector('#imt-query-note').innerText)",
                           timeout=120_000)
    old_grid = ui.image_src(page, "imt-head-grid")
    ui.click_image(page, "imt-fig3", (6 + 0.5) / SIZE, (1 + 0.5) / SIZE)  # row 1, column 6: under the stroke
    ui.wait_for_image_change(page, "imt-head-grid", old_grid)
    page.wait_for_function("() => /row 1, column 6/i.test(document.querySelector('#imt-query-note').innerText)",
                           timeout=120_000)
    note = text_of(page, "#imt-query-note")
    assert "hidden" in note and "could not see" in note
    ui.wait_for_images_loaded(page, "#imt-head-grid img, #imt-fig3 img, #imt-unseen img", 3)
    ui.screenshot(page, tmp_path, "image_transformer_drawing")
