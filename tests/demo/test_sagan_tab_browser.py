"""Self-attention GAN tab in headless Chromium: generate, click a pixel of the selected image or of an image of the
grid, see its attention map."""
from __future__ import annotations

import pytest

from demo import sagan_tab as tab
from tests.demo import browser_utils as ui

pytestmark = pytest.mark.browser


def test_generate_then_click_shows_attention(page, tmp_path):
    ui.open_tab(page, "Self-attention GAN")
    arrival_grid = ui.image_src(page, "sagan-grid")
    page.locator("#sagan-count input[type='number']").fill("12")
    page.locator("#sagan-count input[type='number']").press("Enter")
    page.locator("#sagan-generate").click()
    grid = ui.wait_for_image_change(page, "sagan-grid", arrival_grid)
    size = page.locator("#sagan-grid img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert size == [8 * tab.THUMB + 7 * tab.GRID_GAP, 2 * (tab.THUMB + tab.TILE_LABEL) + tab.GRID_GAP]  # 8 + 4
    ui.image_src(page, "sagan-selected")
    # Click at 3/4 across, 1/4 down of the enlarged 32x32 image: pixel (y, x) ~ (8, 24).
    ui.click_image(page, "sagan-selected", 0.75, 0.25)
    page.locator("#sagan-overlay img").first.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#sagan-qy input').value !== '16'")
    y = int(page.locator("#sagan-qy input").input_value())
    x = int(page.locator("#sagan-qx input").input_value())
    assert abs(y - 8) <= 1 and abs(x - 24) <= 1
    first = ui.image_src(page, "sagan-overlay")
    ui.click_image(page, "sagan-selected", 0.2, 0.8)  # another pixel -> another map
    second = ui.wait_for_image_change(page, "sagan-overlay", first)
    # One click on image 10 of the grid (second row, third column) at its pixel (y=20, x=6): that image selected,
    # the pixel its query, its map shown.
    selected = ui.image_src(page, "sagan-selected")
    step, scale = tab.THUMB + tab.GRID_GAP, tab.THUMB // tab.IMAGE
    row = tab.THUMB + tab.TILE_LABEL + tab.GRID_GAP
    ui.click_image_pixel(page, "sagan-grid", 2 * step + 6 * scale + 1, row + 20 * scale + 1)
    page.wait_for_function("() => document.querySelector('#sagan-index input').value === '10'")
    assert [page.locator(f"#sagan-{axis} input").input_value() for axis in ("qy", "qx")] == ["20", "6"]
    ui.wait_for_image_change(page, "sagan-selected", selected)
    ui.wait_for_image_change(page, "sagan-overlay", second)
    assert ui.image_src(page, "sagan-grid") == grid
    ui.screenshot(page, tmp_path, "sagan")
    assert not [e for e in page.console_errors if "sagan" in e.lower()]


def test_the_ablation_table_opens_beside_the_generator(page):
    ui.open_tab(page, "Self-attention GAN")
    page.locator("#sagan-ablation").get_by_text("Does attention help? The trained ablation").click()
    table = page.locator("#sagan-ablation table").first
    table.wait_for(state="visible")
    assert "FID" in table.inner_text() and "class consistency" in table.inner_text()
