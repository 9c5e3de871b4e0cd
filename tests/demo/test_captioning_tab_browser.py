"""Captioning tab in headless Chromium: pick an example scene, see the caption, the per-word maps and
the correctness table, click a word's map on the sheet to enlarge it, upload a broken file and see the error."""
from __future__ import annotations

import pytest

from demo import captioning_tab as tab
from tests.demo import browser_utils as ui
from tests.demo.test_captioning_tab import tab_model  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser

GAP = 4  # between the panels of the sheet (render.sheet's)


def caption_text(page) -> str:
    return page.locator("#cap-caption textarea").input_value()


def test_captioning_tab_in_the_browser(page, tab_model, tmp_path):  # noqa: F811
    ui.open_tab(page, "Captioning")
    assert page.get_by_text("trained on").first.is_visible()  # the Fashion-Scenes notice
    # The tab arrives showing the last example. Pick the first one (another scene) and wait until the sheet
    # shows its maps: clicking on the arrival's sheet while the new caption is on its way would be lost when
    # the new results replace it.
    ui.wait_for_images_loaded(page, "#cap-sheet img, #cap-animation img", count=2)  # the arrival's maps
    arrival_sheet, arrival_animation = ui.image_src(page, "cap-sheet"), ui.image_src(page, "cap-animation")
    examples = page.locator(".gallery-item, button.gallery-item, [data-testid='examples'] button")
    examples.first.click()
    ui.wait_for_image_change(page, "cap-sheet", arrival_sheet)  # the PNG download, shown
    ui.wait_for_image_change(page, "cap-animation", arrival_animation)  # the GIF download, shown
    caption = caption_text(page)
    words = caption.split()
    # the example scenes are 96x96: panels VIEW_SIZE wide, the word under each, in rows of SHEET_COLUMNS
    panel_h, panel_w = tab.VIEW_SIZE + tab.strip_height(tab.VIEW_SIZE), tab.VIEW_SIZE
    rows = -(-len(words) // tab.SHEET_COLUMNS)
    size = page.locator("#cap-sheet img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert len(words) > 1 and size == [min(len(words), tab.SHEET_COLUMNS) * (panel_w + GAP) - GAP,
                                       rows * (panel_h + GAP) - GAP]
    note = page.locator("#cap-note").inner_text()
    assert "Ground truth known" in note
    if "No object word" not in note:  # (an untrained stand-in model may name no item)
        page.locator("#cap-correctness").wait_for(state="visible")

    # clicking a word's map on the sheet shows it large and selects the word
    old = ui.image_src(page, "cap-large")
    row, col = divmod(len(words) - 1, tab.SHEET_COLUMNS)
    ui.click_image_pixel(page, "cap-sheet", col * (panel_w + GAP) + panel_w // 2, row * (panel_h + GAP) + panel_h // 2)
    ui.wait_for_image_change(page, "cap-large", old)
    checked = page.locator("#cap-words input:checked")
    assert checked.count() == 1 and checked.get_attribute("value") == str(len(words) - 1)
    # ... and so does picking a word
    old = ui.image_src(page, "cap-large")
    page.locator("#cap-words label").first.click()
    ui.wait_for_image_change(page, "cap-large", old)
    assert page.locator("#cap-words input:checked").get_attribute("value") == "0"
    ui.screenshot(page, tmp_path, "captioning")

    # a broken upload gives a visible error message and the tab keeps working
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    page.locator("#cap-image input[type='file']").set_input_files(str(bad))
    page.get_by_text("damaged or truncated").first.wait_for(state="visible")
    assert page.locator("#cap-random").is_enabled()
    page.locator("#cap-random").click()
    page.wait_for_function("() => (document.querySelector('#cap-note') || {}).innerText?.includes('seed')")
    assert caption_text(page)
    ui.screenshot(page, tmp_path, "captioning_random")
