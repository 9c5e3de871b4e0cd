"""The Image Transformer tab in headless Chromium (tiny random models unless the shipped weights are used):
sample and watch the images stream in, pick one, click a pixel, see Fig. 3 and the attention weights."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from demo import image_transformer_tab as tab
from tests.demo import browser_utils as ui
from tests.demo.test_image_transformer_tab import SIZE, is_unknown, sheet_images, tiny_models  # noqa: F401

pytestmark = pytest.mark.browser

# What the sampling shows while it runs: each status text, and each picture (src) of the samples.
RECORD_STATUS = """() => {
  window.__statuses = [];
  const view = document.querySelector('#imt-samples');
  const shown = () => { const img = view.querySelector('img'); return img && img.getAttribute('src'); };
  window.__pictures = [shown()];  // the arrival's, then each new one
  const el = document.querySelector('#imt-sample-status');
  new MutationObserver(() => window.__statuses.push(el.innerText))
    .observe(el, {subtree: true, childList: true, characterData: true});
  new MutationObserver(() => {
    const src = shown();
    if (src && src !== window.__pictures[window.__pictures.length - 1]) window.__pictures.push(src);
  }).observe(view, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""
SIDE = tab.scale_of((SIZE, SIZE), tab.SAMPLE_PX) * SIZE  # each image's side on the results picture


def cell_centre(k: int) -> tuple[int, int]:
    """(x, y) of the centre of image ``k`` of a results picture, in its own pixels."""
    row, col = divmod(k, tab.SHEET_COLUMNS)
    return col * (SIDE + tab.SHEET_GAP) + SIDE // 2, row * (SIDE + tab.CELL_LABEL + tab.SHEET_GAP) + SIDE // 2


def shown_images(page, src: str, count: int) -> list[np.ndarray]:
    """The ``count`` images of the results picture at ``src`` as the browser gets it, one colour per grid cell."""
    with Image.open(io.BytesIO(page.request.get(src).body())) as im:
        return sheet_images(np.asarray(im.convert("RGB")), count)


def picture_size(page, elem_id: str) -> list[int]:
    return page.locator(f"#{elem_id} img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")


def sheet_size(count: int) -> list[int]:
    """[width, height] of a results picture of ``count`` images."""
    rows = -(-count // tab.SHEET_COLUMNS)
    return [min(count, tab.SHEET_COLUMNS) * (SIDE + tab.SHEET_GAP) - tab.SHEET_GAP,
            rows * (SIDE + tab.CELL_LABEL + tab.SHEET_GAP) - tab.SHEET_GAP]


def test_image_transformer_tab_streams_and_inspects(page, tiny_models, tmp_path):  # noqa: F811
    ui.open_tab(page, "Image Transformer")
    # The tab opens with finished samples ("Done"): wait for them, then record only what this sampling shows.
    page.wait_for_function("() => document.querySelector('#imt-sample-status').innerText.includes('Done')",
                           timeout=120_000)
    page.get_by_label("Local 2D attention").check()
    page.evaluate(RECORD_STATUS)
    page.locator("#imt-sample-btn").click()
    # The status still holds the arrival example's "Done" while this sampling runs: wait for an intermediate state,
    # then for a "Done" after it with no progress text left.
    page.wait_for_function("""() => {
      const s = window.__statuses;
      const i = s.findIndex(x => x.includes('Generating') || x.includes('generated '));
      return i >= 0 && s.slice(i + 1).some(x => x.includes('Done') && !/generated |processing|queue/.test(x));
    }""", timeout=180_000)
    statuses = page.evaluate("window.__statuses")
    assert any("Generating" in s or "generated " in s for s in statuses), f"no intermediate state: {statuses}"
    # The samples grew on screen (a picture per streamed update), then the finished ones stay (the PNG download).
    pictures = page.evaluate("window.__pictures")
    assert len(pictures) >= 2, pictures
    first = pictures[1]
    assert any(is_unknown(cells).any() for cells in shown_images(page, first, 4)), "no partial picture was shown"
    for _ in range(100):
        ui.wait_for_images_loaded(page, "#imt-samples img", 1)
        if not any(is_unknown(cells).any() for cells in shown_images(page, ui.image_src(page, "imt-samples"), 4)):
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the finished samples were not shown")
    assert picture_size(page, "imt-samples") == sheet_size(4)

    old = ui.image_src(page, "imt-fig3")
    ui.click_image_pixel(page, "imt-samples", *cell_centre(1))  # choose a sample to inspect
    ui.wait_for_image_change(page, "imt-fig3", old)
    page.locator("#imt-fig3 img").wait_for(state="visible")
    page.locator("#imt-attention img").wait_for(state="visible")
    old = ui.image_src(page, "imt-fig3")
    ui.click_image(page, "imt-fig3", 0.3, 0.6)
    ui.wait_for_image_change(page, "imt-fig3", old)
    # 12x12 tiny model: 30% across and 60% down is row 7, column 3.
    page.wait_for_function("() => document.querySelector('#imt-inspect-text').innerText.includes('row 7, column 3')")
    text = page.locator("#imt-inspect-text").inner_text()
    assert "weight inside the visible window 1.000" in text

    page.get_by_role("button", name="Animate the generation order").click()
    page.locator("#imt-animation img").wait_for(state="visible")
    assert ".gif" in ui.image_src(page, "imt-animation")
    ui.wait_for_images_loaded(page, "#imt-fig3 img, #imt-attention img, #imt-animation img", 3)
    ui.screenshot(page, tmp_path, "image_transformer")


def test_image_transformer_tab_completes_a_test_image(page, tiny_models, fashion_mnist, tmp_path):  # noqa: F811
    ui.open_tab(page, "Image Transformer")
    page.get_by_role("tab", name="Complete", exact=True).click()
    page.get_by_label("Fashion-MNIST test image #").fill("3")
    page.locator("#imt-pick-btn").click()
    page.locator("#imt-upload img").wait_for(state="visible")
    page.locator("#imt-rows input[type=number]").fill("6")
    page.locator("#imt-rows input[type=number]").press("Enter")
    page.locator("#imt-complete-btn").click()
    page.wait_for_function("() => document.querySelector('#imt-complete-status').innerText.includes('Kept')")
    # kept, original, 4 completions on one picture: the PNG download, shown
    ui.wait_for_images_loaded(page, "#imt-completions img", 1)
    assert picture_size(page, "imt-completions") == sheet_size(2 + 4)
    status = page.locator("#imt-complete-status").inner_text()
    assert "resized from 168x168" in status  # the test image is shown 6x (168 px); the tiny model is 12x12
    ui.screenshot(page, tmp_path, "image_transformer_complete")
