"""The explorer tab in headless Chromium: load the page, open the tab, click the picture, check what appears.
Screenshots are kept under the test's tmp dir (pytest --basetemp=DIR to keep them somewhere known)."""
from __future__ import annotations

import re

import pytest

from tests.demo import browser_utils as ui

pytestmark = pytest.mark.browser


def summary(page) -> str:
    return page.locator("#explorer-summary").inner_text()


def test_page_shows_every_tab(page, tmp_path):
    for name in ("Captioning", "Self-attention GAN", "Image Transformer", "Attention explorer"):
        assert page.get_by_role("tab", name=name, exact=True).is_visible()
    ui.screenshot(page, tmp_path, "home")


def test_explorer_click_moves_the_query(page, tmp_path):
    ui.open_tab(page, "Attention explorer")
    old_src = ui.image_src(page, "explorer-visibility")
    before = summary(page)
    assert "row 13, column 12" in before  # the tab opens filled in
    legend = page.locator("#explorer-legend")
    for label in ("query", "query block", "memory", "masked"):
        assert legend.get_by_text(label, exact=False).first.is_visible()
    assert page.locator("#explorer-cost").get_by_text("FLOPs", exact=False).first.is_visible()

    # 28x28 grid: click the centre of the cell in row 25, column 2.
    ui.click_image(page, "explorer-visibility", 2.5 / 28, 25.5 / 28)
    ui.wait_for_image_change(page, "explorer-visibility", old_src)
    page.wait_for_function("() => document.querySelector('#explorer-summary').innerText.includes('row 25,')")
    text = summary(page)
    assert "row 25, column 2" in text
    assert re.search(r"may attend to \d+ positions", text)

    # Switching to local 1D shows its inputs and redraws.
    src = ui.image_src(page, "explorer-visibility")
    page.get_by_label("Local 1D").check()
    ui.wait_for_image_change(page, "explorer-visibility", src)
    assert page.get_by_label("Query block length l_q").is_visible()
    assert not page.get_by_label("Query block height").is_visible()

    page.locator("#explorer-measure").click()
    page.locator("#explorer-measured").get_by_text(" ms", exact=False).first.wait_for()
    shot = ui.screenshot(page, tmp_path, "explorer")
    assert shot.exists()
    assert not [e for e in page.console_errors if "Error" in e and "favicon" not in e]
