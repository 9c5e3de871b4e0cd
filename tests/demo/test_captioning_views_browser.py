"""The captioning tab's views beside the caption, in headless Chromium: every beam of the arrival scene, the soft and
hard maps side by side, and the faithfulness test (run again with another seed). Each view is computed only when
its button is pressed; every click waits first for the result it depends on (the arrival caption, the previous
picture), so no click lands on a view that is about to be replaced.

The app serves its registry models here (no ``tab_model`` override): the arrival caption was computed with them at
start-up, and the best beam must be that caption."""
from __future__ import annotations

import pytest

from demo import captioning_tab as tab
from tests.demo import browser_utils as ui

pytestmark = pytest.mark.browser

ARRIVAL_MS = 120_000  # the first page load may wait for the start-up computation on a busy CPU


def arrival_caption(page) -> str:
    """Open the tab and wait for the arrival example's caption and maps: the image the views will use."""
    ui.open_tab(page, "Captioning")
    page.wait_for_function("() => (document.querySelector('#cap-caption textarea') || {}).value?.trim().length > 0",
                           timeout=ARRIVAL_MS)
    caption = page.locator("#cap-caption textarea").input_value()
    ui.wait_for_images_loaded(page, "#cap-sheet img", count=1, timeout_ms=ARRIVAL_MS)
    return caption


def open_view(page, name: str) -> None:
    """Open the accordion of the extra views and select the sub-tab ``name``."""
    page.locator("#cap-more").get_by_text("Every beam · soft vs hard", exact=False).first.click()
    tab = page.get_by_role("tab", name=name, exact=True)
    tab.wait_for(state="visible")
    tab.click()
    page.wait_for_function(
        "name => [...document.querySelectorAll(\"button[role='tab']\")]"
        ".some(t => t.textContent.trim() === name && t.getAttribute('aria-selected') === 'true')", arg=name)


def test_every_beam_view(page, tmp_path):
    caption = arrival_caption(page)
    open_view(page, "Every beam")
    assert page.locator("#cap-beams-picture img").count() == 0  # nothing computed on arrival
    page.locator("#cap-beams-run").click()
    table = ui.wait_for_text(page, "#cap-beams-table", caption)  # the best hypothesis is the caption above
    assert "score" in table
    n = page.locator("#cap-beams-table tbody tr").count()
    assert 1 <= n <= 3  # at most the beam size (3)
    # one picture: each hypothesis's strip of word maps under its header, best first; it is the PNG download
    ui.wait_for_images_loaded(page, "#cap-beams-picture img", count=1)
    assert ui.image_src(page, "cap-beams-picture") == ui.download_url(page, "cap-beams-export-png")
    width, height = page.locator("#cap-beams-picture img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert height > n * tab.THUMB and width >= tab.THUMB
    ui.screenshot(page, tmp_path, "captioning-beams")


def test_soft_vs_hard_view(page, tmp_path):
    arrival_caption(page)
    open_view(page, "Soft vs hard")
    page.locator("#cap-compare-run").click()
    page.locator("#cap-compare-picture img").wait_for(state="visible")
    ui.wait_for_images_loaded(page, "#cap-compare-picture img", count=1)
    note = ui.wait_for_text(page, "#cap-compare-note", "hard")
    assert "soft" in note and "Columns pair the words" in note
    ui.screenshot(page, tmp_path, "captioning-soft-vs-hard")


def test_faithfulness_view(page, tmp_path):
    arrival_caption(page)
    open_view(page, "Faithfulness")
    assert page.locator("#cap-faith-picture img").count() == 0  # nothing computed on arrival
    page.locator("#cap-faith-run").click()
    note = ui.wait_for_text(page, "#cap-faith-note", "Caption:")
    if "no colour or class word" in note:  # (an untrained stand-in model may name nothing)
        return
    assert "nats" in note and "seed 0" in note
    ui.wait_for_images_loaded(page, "#cap-faith-picture img", count=1)
    first = ui.image_src(page, "cap-faith-picture")
    assert first == ui.download_url(page, "cap-faith-export-png")  # the picture shown is the PNG download
    assert "drop: attended cells" in page.locator("#cap-faith-table").inner_text()
    # one row per tested word: its four panels (attended hidden, random hidden, α, saliency) under its numbers
    n = page.locator("#cap-faith-table tbody tr").count()
    width, height = page.locator("#cap-faith-picture img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert n >= 1 and height > n * tab.THUMB and width >= 4 * tab.THUMB
    # another seed draws other random cells: wait for the new picture before looking at it
    seed = page.locator("#cap-faith-seed input")
    seed.fill("7")
    seed.press("Enter")
    page.locator("#cap-faith-run").click()
    ui.wait_for_text(page, "#cap-faith-note", "seed 7")
    again = ui.wait_for_image_change(page, "cap-faith-picture", first)
    assert again == ui.download_url(page, "cap-faith-export-png")
    ui.screenshot(page, tmp_path, "captioning-faithfulness")
