"""Self-attention GAN tab in headless Chromium: generate, click a pixel, see its attention map."""
from __future__ import annotations

import pytest

from tests.demo.browser_utils import (  # noqa: F401  (browser, page: fixtures)
    browser,
    click_image,
    image_src,
    open_tab,
    page,
    screenshot,
    wait_for_image_change,
    wait_for_images_loaded,
)

pytestmark = pytest.mark.browser


def test_generate_then_click_shows_attention(page, tmp_path):
    open_tab(page, "Self-attention GAN")
    page.locator("#sagan-generate").click()
    assert wait_for_images_loaded(page, "#sagan-gallery img", count=8) >= 8
    image_src(page, "sagan-selected")
    # Click at 3/4 across, 1/4 down of the enlarged 32x32 image: pixel (y, x) ~ (8, 24).
    click_image(page, "sagan-selected", 0.75, 0.25)
    page.locator("#sagan-overlay img").first.wait_for(state="visible")
    page.wait_for_function("() => document.querySelector('#sagan-qy input').value !== '16'")
    y = int(page.locator("#sagan-qy input").input_value())
    x = int(page.locator("#sagan-qx input").input_value())
    assert abs(y - 8) <= 1 and abs(x - 24) <= 1
    first = image_src(page, "sagan-overlay")
    click_image(page, "sagan-selected", 0.2, 0.8)  # another pixel -> another map
    wait_for_image_change(page, "sagan-overlay", first)
    screenshot(page, tmp_path, "sagan")
    assert not [e for e in page.console_errors if "sagan" in e.lower()]
