"""The Self-attention GAN tab's views of both networks in headless Chromium: the discriminator's map and verdict
(switch the network, judge the selected generated image, then a real test image, click a pixel), the knock-out of a
query (its image, the difference and its size), and an export's missing discriminator told in words.

The app runs in this process: the discriminator view is on the shipped weights (generator and discriminator);
``sagan_with_d`` / ``sagan_without_d`` make it serve a tiny SAGAN with or without a discriminator."""
from __future__ import annotations

import pytest

from demo import sagan_tab as tab
from tests.demo import browser_utils as ui
from tests.demo.test_captioning_views_browser import ARRIVAL_MS
from tests.demo.test_sagan_tab import sagan_with_d, sagan_without_d  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def sagan_tab_with_a_grid(page) -> None:
    ui.open_tab(page, "Self-attention GAN")
    ui.wait_for_images_loaded(page, "#sagan-grid img", count=1, timeout_ms=ARRIVAL_MS)  # the arrival grid


def choose(page, radio_id: str, option: str) -> None:
    page.locator(f"#{radio_id}").get_by_text(option, exact=True).click()


def test_discriminator_view(page, tmp_path):  # the shipped weights: their generator and discriminator
    sagan_tab_with_a_grid(page)
    assert not page.locator("#sagan-d-view").is_visible()
    choose(page, "sagan-network", tab.DISCRIMINATOR)
    # The switch shows D's view of the selected generated image (index 0) at the query (16, 16) at once.
    verdict = ui.wait_for_text(page, "#sagan-d-verdict", "generated image #0")
    assert "leans" in verdict and "score" in verdict
    assert not page.locator("#sagan-selected").is_visible()  # the generator's view is hidden meanwhile
    generated = ui.image_src(page, "sagan-d-image")
    first = ui.image_src(page, "sagan-d-overlay")
    assert first == ui.download_url(page, "sagan-d-export-png")  # the overlay shown is the PNG download
    # A real Fashion-MNIST test image instead: its index, then the source.
    page.locator("#sagan-d-test-index input").fill("42")
    choose(page, "sagan-d-source", tab.REAL)
    verdict = ui.wait_for_text(page, "#sagan-d-verdict", "test image #42")
    assert "true label" in verdict
    assert ui.wait_for_image_change(page, "sagan-d-image", generated) != generated
    real_overlay = ui.wait_for_image_change(page, "sagan-d-overlay", first)
    assert real_overlay == ui.download_url(page, "sagan-d-export-png")
    # Click a pixel of the real image: 3/4 across, 1/4 down -> (y, x) ~ (8, 24).
    ui.click_image(page, "sagan-d-image", 0.75, 0.25)
    page.wait_for_function("() => document.querySelector('#sagan-d-qy input').value !== '16'")
    y, x = (int(page.locator(f"#sagan-d-{axis} input").input_value()) for axis in ("qy", "qx"))
    assert abs(y - 8) <= 1 and abs(x - 24) <= 1
    clicked = ui.wait_for_image_change(page, "sagan-d-overlay", real_overlay)
    assert clicked == ui.download_url(page, "sagan-d-export-png")
    ui.wait_for_text(page, "#sagan-d-verdict", "test image #42")
    ui.screenshot(page, tmp_path, "sagan-discriminator")
    # While D's view is on screen it follows the generator's images: a new grid (gamma = 0), then a click on image 1.
    choose(page, "sagan-d-source", tab.GENERATED)
    ui.wait_for_text(page, "#sagan-d-verdict", "generated image #0")
    before = ui.wait_for_image_change(page, "sagan-d-overlay", clicked)
    page.get_by_label("gamma = 0 at inference (switch attention off)").check()
    page.locator("#sagan-generate").click()
    regenerated = ui.wait_for_image_change(page, "sagan-d-overlay", before)
    assert regenerated == ui.download_url(page, "sagan-d-export-png")
    scale = tab.THUMB // tab.IMAGE
    ui.click_image_pixel(page, "sagan-grid", tab.THUMB + tab.GRID_GAP + 16 * scale, 16 * scale)  # image 1's centre
    ui.wait_for_text(page, "#sagan-d-verdict", "generated image #1")
    picked = ui.wait_for_image_change(page, "sagan-d-overlay", regenerated)
    assert picked == ui.download_url(page, "sagan-d-export-png")
    # Back to the generator: its view again.
    choose(page, "sagan-network", tab.GENERATOR)
    page.locator("#sagan-selected").wait_for(state="visible")
    assert not page.locator("#sagan-d-view").is_visible()
    assert not [e for e in page.console_errors if "sagan" in e.lower()]


def test_knockout_view(page, sagan_with_d, tmp_path):  # noqa: F811
    sagan_tab_with_a_grid(page)
    page.locator("#sagan-qy input").fill("10")
    page.locator("#sagan-qx input").fill("21")
    page.locator("#sagan-ko-run").click()
    words = ui.wait_for_text(page, "#sagan-ko-size", "Knocking out query (5, 10)")
    assert "of 1024 pixels" in words and "grey levels" in words
    for elem_id in ("sagan-ko-image", "sagan-ko-diff"):
        ui.wait_for_images_loaded(page, f"#{elem_id} img", count=1)
    first = ui.image_src(page, "sagan-ko-diff")
    page.locator("#sagan-qy input").fill("20")
    page.locator("#sagan-ko-run").click()  # another query -> another difference
    ui.wait_for_text(page, "#sagan-ko-size", "Knocking out query (10, 10)")
    ui.wait_for_image_change(page, "sagan-ko-diff", first)
    ui.screenshot(page, tmp_path, "sagan-knockout")
    assert not [e for e in page.console_errors if "sagan" in e.lower()]


def test_without_a_discriminator_the_switch_says_so(page, sagan_without_d, tmp_path):  # noqa: F811
    sagan_tab_with_a_grid(page)
    choose(page, "sagan-network", tab.DISCRIMINATOR)
    # Gradio's error toast, in the tab's words
    ui.wait_for_text(page, "[data-testid='toast-text']", "This SAGAN export holds no discriminator")
    page.locator("[data-testid='toast-text']").first.wait_for(state="visible")
    ui.screenshot(page, tmp_path, "sagan-no-discriminator", full_page=False)  # the toast is fixed to the window
    choose(page, "sagan-network", tab.GENERATOR)  # the generator's views still work
    first = ui.image_src(page, "sagan-overlay")
    ui.click_image(page, "sagan-selected", 0.3, 0.6)
    ui.wait_for_image_change(page, "sagan-overlay", first)
