"""Inductive biases tab in headless Chromium: the arrival view, a new shift, the measured curves."""
from __future__ import annotations

import pytest

from demo import inductive_bias_tab as tab
from tests.demo import browser_utils as ui
from tests.demo.test_inductive_bias_tab import bias_models  # noqa: F401  (fixture)

pytestmark = pytest.mark.browser


def set_slider(page, elem_id: str, value: int) -> None:
    """Type a value into a Gradio slider's number box and commit it."""
    box = page.locator(f"#{elem_id} input[type='number']")
    box.fill(str(value))
    box.press("Enter")


def table_rows(page) -> int:
    """Data rows of the (virtualised) predictions table, from its grid's row count (which counts the header)."""
    return int(page.locator("#bias-table [role='grid']").get_attribute("aria-rowcount")) - 1


def test_inductive_bias_tab_in_the_browser(page, bias_models, tmp_path):  # noqa: F811
    ui.open_tab(page, "Inductive biases")
    page.get_by_text("translation equivariance").first.wait_for(state="visible")
    # the arrival's comparison: its sheet shown, which is its PNG download
    ui.wait_for_text(page, "#bias-reading", "(+3, +4)")
    ui.wait_for_images_loaded(page, "#bias-sheet img", count=1)
    old = ui.image_src(page, "bias-sheet")
    assert old == ui.download_url(page, "bias-export-png")
    set_slider(page, "bias-dy", -2)
    set_slider(page, "bias-dx", 4)
    page.locator("#bias-run").click()
    page.wait_for_function("() => (document.querySelector('#bias-reading') || {}).innerText?.includes('(-2, +4)')")
    new = ui.wait_for_image_change(page, "bias-sheet", old)
    assert new == ui.download_url(page, "bias-export-png")  # the sheet shown is this answer's PNG download
    # one row of maps per model, six columns (the two canvases, f(x), f(shift x), shift f(x), the error)
    width, height = page.locator("#bias-sheet img").first.evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert width > 6 * tab.CELL and height > len(tab.MODELS) * tab.CELL
    assert table_rows(page) == 4
    for label in ("CNN", "attention, relative positions"):
        assert page.locator("#bias-table").get_by_text(label, exact=True).first.is_visible()
    # every export of this answer is downloadable
    for kind in ("png", "gif", "npz", "json"):
        assert page.locator(f"#bias-export-{kind}").is_enabled()
    # the three curves are drawn (Vega renders an svg or a canvas) or the summary says what is not measured
    summary = page.locator("#bias-summary").inner_text()
    if "Not measured yet" not in summary:
        for plot in ("bias-accuracy-plot", "bias-error-plot", "bias-bpd-plot"):
            page.locator(f"#{plot} canvas, #{plot} svg").first.wait_for(state="visible")
    ui.screenshot(page, tmp_path, "inductive_bias")

    # a bad number typed into the API-facing field gives a visible message and the tab keeps working
    page.locator("#bias-index input").fill("123456")
    page.locator("#bias-run").click()
    page.get_by_text("Test image index must be a whole number between 0 and 9999").first.wait_for(state="visible")
