"""Captioning tab in headless Chromium: pick an example scene, see the caption, the per-word maps and
the correctness table, click a gallery map to enlarge it, upload a broken file and see the error."""
from __future__ import annotations

import pytest

from tests.demo.browser_utils import browser, image_src, open_tab, page, screenshot, wait_for_image_change  # noqa: F401
from tests.demo.test_captioning_tab import tab_model  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


def caption_text(page) -> str:
    return page.locator("#cap-caption textarea").input_value()


def gallery_srcs(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "imgs => imgs.map(i => i.getAttribute('src'))")


def wait_for_gallery_change(page, selector: str, old: list[str]) -> None:
    """Wait until the gallery holds other images than ``old``, all loaded."""
    page.wait_for_function(
        "([sel, old]) => { const imgs = [...document.querySelectorAll(sel)];"
        " return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0)"
        " && JSON.stringify(imgs.map(i => i.getAttribute('src'))) !== JSON.stringify(old); }",
        arg=[selector, old],
    )


def test_captioning_tab_in_the_browser(page, tab_model, tmp_path):  # noqa: F811
    open_tab(page, "Captioning")
    assert page.get_by_text("trained on").first.is_visible()  # the Fashion-Scenes notice
    # The tab arrives showing the last example. Pick the first one (another scene) and wait until the gallery
    # shows its maps: clicking on the arrival's gallery while the new caption is on its way would be lost when
    # the new results replace it (and Gradio names images by content, so an unchanged map keeps its src).
    gallery_imgs = "#cap-gallery button img, #cap-gallery .thumbnail-item img"
    wait_for_gallery_change(page, gallery_imgs, [])  # the arrival's maps, loaded
    arrival_srcs = gallery_srcs(page, gallery_imgs)
    examples = page.locator(".gallery-item, button.gallery-item, [data-testid='examples'] button")
    examples.first.click()
    wait_for_gallery_change(page, gallery_imgs, arrival_srcs)
    caption = caption_text(page)
    words = caption.split()
    gallery = page.locator(gallery_imgs)
    assert len(words) > 1 and gallery.count() == len(words)
    page.locator("#cap-animation img").wait_for(state="visible")
    note = page.locator("#cap-note").inner_text()
    assert "Ground truth known" in note
    if "No object word" not in note:  # (an untrained stand-in model may name no item)
        page.locator("#cap-correctness").wait_for(state="visible")

    # clicking a word's map in the gallery shows it large and selects the word
    old = image_src(page, "cap-large")
    gallery.nth(len(words) - 1).click()
    wait_for_image_change(page, "cap-large", old)
    checked = page.locator("#cap-words input:checked")
    assert checked.count() == 1 and checked.get_attribute("value") is not None
    # ... and so does picking a word
    old = image_src(page, "cap-large")
    page.locator("#cap-words label").first.click()
    wait_for_image_change(page, "cap-large", old)
    assert page.locator("#cap-words input:checked").get_attribute("value") == "0"
    screenshot(page, tmp_path, "captioning")

    # a broken upload gives a visible error message and the tab keeps working
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    page.locator("#cap-image input[type='file']").set_input_files(str(bad))
    page.get_by_text("damaged or truncated").first.wait_for(state="visible")
    assert page.locator("#cap-random").is_enabled()
    page.locator("#cap-random").click()
    page.wait_for_function("() => (document.querySelector('#cap-note') || {}).innerText?.includes('seed')")
    assert caption_text(page)
    screenshot(page, tmp_path, "captioning_random")
