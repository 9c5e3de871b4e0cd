"""Attention explorer tab: handlers in-process, then the endpoints through gradio_client on the launched app."""
from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from attn_models.layers.local_attention import (
    VIS_MASKED,
    VIS_QUERY,
    AttentionPattern,
    attention_mask,
    visibility,
)
from demo import explorer_tab as ex
from demo.render import FIG3_COLORS, HATCH

CFG_2D = dict(h=12, w=10, c=1, kind="local2d", query_len=8, memory_len=8, block_h=3, block_w=4,
              flange_h=2, flange_w=2)
CFG_1D_RGB = dict(h=6, w=5, c=3, kind="local1d", query_len=9, memory_len=6, block_h=1, block_w=1,
                  flange_h=0, flange_w=0)


def pattern_of(cfg):
    return AttentionPattern(cfg["kind"], cfg["query_len"], cfg["memory_len"], cfg["block_h"], cfg["block_w"],
                            cfg["flange_h"], cfg["flange_w"])


def cell_colours(picture: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Colour at the centre of every grid cell of an explorer picture."""
    s = ex.cell_scale(rows, cols)
    assert picture.shape[:2] == (rows * s, cols * s)
    return picture[s // 2 :: s, s // 2 :: s][:rows, :cols]


@pytest.mark.parametrize("cfg,query", [(CFG_2D, (7, 5, 0)), (CFG_1D_RGB, (3, 2, 1))])
def test_visibility_picture_matches_the_mask(cfg, query):
    row, col, channel = query
    pic, order, text, r, c, ch = ex.show_visibility(**cfg, row=row, col=col, channel=channel)
    assert (r, c, ch) == query
    h, wc = cfg["h"], cfg["w"] * cfg["c"]
    q = row * wc + col * cfg["c"] + channel
    colours = cell_colours(pic, h, wc)
    mask_row = attention_mask(cfg["h"], cfg["w"], cfg["c"], pattern_of(cfg))[q].numpy().reshape(h, wc)
    query_colour = np.array(FIG3_COLORS[VIS_QUERY])
    attendable = {tuple(FIG3_COLORS[k]) for k in (ex.VIS_BLOCK, ex.VIS_MEMORY, VIS_QUERY)}
    painted = np.array([[tuple(colours[i, j]) in attendable for j in range(wc)] for i in range(h)])
    np.testing.assert_array_equal(painted, mask_row)  # blue/red cells are exactly the allowed keys
    assert (colours[row, col * cfg["c"] + channel] == query_colour).all()
    assert f"may attend to **{int(mask_row.sum())}** positions" in text
    assert order.shape == pic.shape


def test_masked_cells_are_hatched():
    pic, *_ = ex.show_visibility(**CFG_2D, row=4, col=5, channel=0)
    codes = visibility(12, 10, 1, pattern_of(CFG_2D), 4 * 10 + 5)
    s = ex.cell_scale(12, 10)
    i, j = np.argwhere(codes == VIS_MASKED)[0]
    cell = pic[i * s + 1 : (i + 1) * s - 1, j * s + 1 : (j + 1) * s - 1].reshape(-1, 3)
    colours = {tuple(x) for x in cell}
    assert tuple(HATCH) in colours and tuple(FIG3_COLORS[VIS_MASKED]) in colours


def test_click_maps_to_the_cell_under_the_pointer():
    h, wc = CFG_1D_RGB["h"], CFG_1D_RGB["w"] * CFG_1D_RGB["c"]
    s = ex.cell_scale(h, wc)
    for row, gcol in [(0, 0), (5, 14), (2, 7)]:
        evt = gr.SelectData(None, {"index": [gcol * s + s // 2, row * s + s // 2], "value": None})
        *_, r, c, ch = ex.select_query(*CFG_1D_RGB.values(), evt)
        assert (r, c * 3 + ch) == (row, gcol)


def test_query_out_of_range_is_clamped():
    *_, r, c, ch = ex.show_visibility(**CFG_2D, row=99, col=99, channel=5)
    assert (r, c, ch) == (11, 9, 0)


def test_cost_table_uses_exact_counts():
    table = ex.cost_table(**CFG_2D, head_dim=32)
    rows = dict(zip(table["quantity"], zip(table["this pattern"], table["full attention"], strict=True),
                    strict=True))
    mask = attention_mask(12, 10, 1, pattern_of(CFG_2D))
    assert rows["positions a query may attend (mean)"][0] == f"{mask.sum(1).float().mean().item():,.1f}"
    assert rows["positions a query may attend (max)"][1] == "120"
    assert rows["memory block l_m (keys scored per query block)"][0] == str((2 + 3) * (4 + 2 * 2))


BAD = [
    (dict(h=0), "Height"),
    (dict(w=65), "Width"),
    (dict(c=4), "Channels"),
    (dict(block_h=float("nan")), "Query block height"),
    (dict(query_len=-3), "Query block length"),
    (dict(kind="dilated"), "Attention must be one of full, local1d, local2d"),
    (dict(flange_w=2.5), "Memory flange width"),
]


@pytest.mark.parametrize("change,field", BAD)
def test_bad_numbers_raise_gr_error(change, field):
    with pytest.raises(gr.Error, match=field):
        ex.show_visibility(**{**CFG_2D, **change}, row=0, col=0, channel=0)
    with pytest.raises(gr.Error, match=field):
        ex.cost_table(**{**CFG_2D, **change}, head_dim=64)


def test_measure_table_times_both_layers():
    table = ex.measure_table(**CFG_2D, head_dim=8, progress=lambda *a, **k: None)
    times = table.iloc[1]
    assert times["this pattern"].endswith(" ms") and times["dense masked"].endswith(" ms")
    assert float(times["ratio"]) > 0
    diff = float(table.iloc[3]["this pattern"])
    assert diff < 1e-4


# ---------------------------------------------------------------------------------------------
# End to end through gradio_client
# ---------------------------------------------------------------------------------------------

def args(cfg):
    """The config as the API takes it: the channel count is a Radio choice, so a string."""
    return [str(cfg[k]) if k == "c" else cfg[k] for k in ("h", "w", "c", "kind", "query_len", "memory_len",
                                                          "block_h", "block_w", "flange_h", "flange_w")]


@pytest.mark.e2e
def test_explorer_endpoints(client):
    pic_path, order_path, text, r, c, ch = client.predict(*args(CFG_2D), 7, 5, 0, api_name="/explorer_visibility")
    pic = np.asarray(Image.open(pic_path).convert("RGB"))
    h, wc = 12, 10
    colours = cell_colours(pic, h, wc)
    assert (colours[7, 5] == FIG3_COLORS[VIS_QUERY]).all()
    n_allowed = int(attention_mask(12, 10, 1, pattern_of(CFG_2D))[75].sum())
    assert f"**{n_allowed}**" in text and (r, c, ch) == (7, 5, 0)

    table = client.predict(*args(CFG_2D), 64, api_name="/explorer_cost")
    flat = [str(x) for row in table["data"] for x in row]
    assert "positions N = h·w·c" in flat and "120" in flat

    measured = client.predict(*args(CFG_1D_RGB), 16, api_name="/explorer_measure")
    assert any(str(x).endswith(" ms") for row in measured["data"] for x in row)


@pytest.mark.e2e
@pytest.mark.parametrize("change", [dict(h=0), dict(block_w=10**6), dict(flange_h=-1), dict(query_len=10**9),
                                    dict(kind="x")])
def test_explorer_bad_input_gives_error_and_server_keeps_serving(client, change):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(*args({**CFG_2D, **change}), 0, 0, 0, api_name="/explorer_visibility")
    assert "must" in str(info.value) or "value" in str(info.value).lower()
    *_, r, c, ch = client.predict(*args(CFG_2D), 1, 1, 0, api_name="/explorer_visibility")
    assert (r, c, ch) == (1, 1, 0)
