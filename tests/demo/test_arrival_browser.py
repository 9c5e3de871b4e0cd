"""Every tab opens with a finished example, in a fresh page, without pressing anything: a captioned scene with
its word maps, a SAGAN grid with the map of one pixel, Image Transformer samples with a Fig. 3 inspection,
the explorer's pattern."""
from __future__ import annotations

import pytest

from tests.demo import browser_utils as ui

pytestmark = pytest.mark.browser

ARRIVAL_MS = 60_000  # the first page load may wait for the start-up computation on a busy CPU


def text_of(page, selector: str) -> str:
    page.wait_for_function("sel => { const e = document.querySelector(sel);"
                           " return e && (e.value || e.innerText || '').trim().length > 0; }",
                           arg=selector, timeout=ARRIVAL_MS)
    loc = page.locator(selector).first
    return loc.input_value() if selector.endswith("textarea") else loc.inner_text()


def test_captioning_opens_with_a_captioned_scene(page, tmp_path):
    ui.open_tab(page, "Captioning")
    words = text_of(page, "#cap-caption textarea").split()
    assert len(words) >= 2
    ui.wait_for_images_loaded(page, "#cap-sheet img, #cap-large img, #cap-animation img", count=3,
                              timeout_ms=ARRIVAL_MS)
    sheet = page.locator("#cap-sheet img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert sheet[0] > sheet[1]  # the word maps side by side
    assert "Ground truth known" in text_of(page, "#cap-note")
    assert page.locator("#cap-words input:checked").get_attribute("value") == "0"
    ui.screenshot(page, tmp_path, "captioning-arrival")


def test_sagan_opens_with_a_grid_and_a_pixels_map(page, tmp_path):
    ui.open_tab(page, "Self-attention GAN")
    ui.wait_for_images_loaded(page, "#sagan-grid img, #sagan-selected img, #sagan-overlay img", count=3,
                              timeout_ms=ARRIVAL_MS)
    assert "Query dependence" in text_of(page, "#sagan-dependence")  # the clicked query's JS divergence
    ui.screenshot(page, tmp_path, "sagan-arrival")


def test_image_transformer_opens_with_samples_and_an_inspection(page, tmp_path):
    ui.open_tab(page, "Image Transformer")
    ui.wait_for_images_loaded(page, "#imt-samples img, #imt-fig3 img, #imt-attention img", count=3,
                              timeout_ms=ARRIVAL_MS)
    samples = page.locator("#imt-samples img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert samples[0] > 3 * samples[1]  # the four samples side by side
    assert "may attend" in text_of(page, "#imt-inspect-text")
    assert "Done" in text_of(page, "#imt-sample-status")
    ui.screenshot(page, tmp_path, "imt-arrival")


def test_explorer_opens_with_a_pattern(page):
    ui.open_tab(page, "Attention explorer")
    ui.wait_for_images_loaded(page, "#explorer-visibility img, #explorer-order img", count=2, timeout_ms=ARRIVAL_MS)
    assert "may attend" in text_of(page, "#explorer-summary")
