"""Attention explorer: which positions a query may attend under full / local 1D / local 2D attention
(the Image Transformer's Fig. 3 on any grid), and what each pattern costs, counted and measured."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from attn_models.layers.cost import human_bytes, human_count, measure_layer, pattern_cost
from attn_models.layers.local_attention import (
    VIS_BLOCK,
    VIS_MASKED,
    VIS_MEMORY,
    AttentionPattern,
    generation_rank,
    visibility,
)
from demo import common
from demo.common import choice, handler, position, user_errors, whole
from demo.render import FIG3_LABELS, colorize, fig3_legend_html, paint_visibility, repeat_pixels, save_exports

KIND_CHOICES = [("Full (causal)", "full"), ("Local 1D", "local1d"), ("Local 2D", "local2d")]
MAX_SIDE = 64           # image height/width the explorer accepts
DENSE_LIMIT = 4096      # positions above which the dense baseline is not timed (N x N would hog the CPU)
PICTURE_PX = 560        # height of the rendered grid
MAX_WIDTH_PX = 900
HEAD_DIM = 64


@dataclass(frozen=True)
class Config:
    h: int
    w: int
    c: int
    pattern: AttentionPattern

    @property
    def grid(self) -> tuple[int, int]:
        return self.h, self.w * self.c

    @property
    def n(self) -> int:
        return self.h * self.w * self.c


def make_config(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w) -> Config:
    h, w = whole("Height", h, 1, MAX_SIDE), whole("Width", w, 1, MAX_SIDE)
    c = whole("Channels", c, 1, 3)
    kind = choice("Attention", kind, [k for _, k in KIND_CHOICES])
    n = h * w * c
    with user_errors():  # the library's own checks, in case they are stricter than ours
        pattern = AttentionPattern(
            kind,
            query_len=whole("Query block length", query_len, 1, n),
            memory_len=whole("Memory length", memory_len, 0, n),
            block_h=whole("Query block height", block_h, 1, h),
            block_w=whole("Query block width", block_w, 1, w * c),
            flange_h=whole("Memory flange height", flange_h, 0, h),
            flange_w=whole("Memory flange width", flange_w, 0, w * c),
        )
    return Config(h, w, c, pattern)


def cell_scale(rows: int, cols: int) -> int:
    """Pixels per grid cell: about PICTURE_PX tall, wide grids (c=3) may grow to MAX_WIDTH_PX; at least 2."""
    return max(2, min(PICTURE_PX // rows, MAX_WIDTH_PX // cols))


def paint_grid(codes: np.ndarray, c: int) -> np.ndarray:
    """int8 (rows, cols) VIS_* codes -> uint8 RGB Fig. 3 picture with grid lines."""
    rows, cols = codes.shape
    s = cell_scale(rows, cols)
    return draw_lines(paint_visibility(codes, s), rows, cols, c, s)


def draw_lines(img: np.ndarray, rows: int, cols: int, c: int, s: int) -> np.ndarray:
    """Thin lines between cells when they are big enough to see, darker ones between pixels when c > 1."""
    img = img.copy()
    if s >= 6:
        img[::s, :] = (img[::s, :] * 0.8).astype(np.uint8)
        img[:, ::s] = (img[:, ::s] * 0.8).astype(np.uint8)
    if c > 1 and s >= 4:
        img[:, :: s * c] = (90, 90, 90)
    return img


def mark_cell(img: np.ndarray, row: int, col: int, s: int) -> np.ndarray:
    """Outline the query cell so it stays visible even when cells are tiny."""
    pil = Image.fromarray(img)
    pad = max(1, min(6, s // 4))  # stays off the centres of the neighbouring cells
    ImageDraw.Draw(pil).rectangle([col * s - pad, row * s - pad, (col + 1) * s + pad - 1, (row + 1) * s + pad - 1],
                                  outline=(120, 0, 0), width=2)
    return np.asarray(pil)


def order_picture(cfg: Config, row: int, col: int) -> np.ndarray:
    """Generation step of every position (dark = early, bright = late), with the query outlined."""
    rank = generation_rank(cfg.h, cfg.w, cfg.c, cfg.pattern).numpy().reshape(cfg.grid)
    rows, cols = cfg.grid
    s = cell_scale(rows, cols)
    img = repeat_pixels(colorize(rank.astype(np.float32), cmap="viridis", vmax=max(1, cfg.n - 1)), s)
    return mark_cell(draw_lines(img, rows, cols, cfg.c, s), row, col, s)


def clamp_query(cfg: Config, row, col, channel) -> tuple[int, int, int]:
    return (position("Query row", row, cfg.h), position("Query column", col, cfg.w),
            position("Query channel", channel, cfg.c))


def describe(cfg: Config, codes: np.ndarray, row: int, col: int, channel: int) -> str:
    rows, cols = cfg.grid
    q = row * cols + col * cfg.c + channel
    step = int(generation_rank(cfg.h, cfg.w, cfg.c, cfg.pattern)[q])
    n_block = int((codes == VIS_BLOCK).sum())
    n_mem = int((codes == VIS_MEMORY).sum())
    n_masked = int((codes == VIS_MASKED).sum())
    ch = f", channel {channel}" if cfg.c > 1 else ""
    text = (f"**Query** row {row}, column {col}{ch} — raster position {q} of {cfg.n}, generated at step {step}.  \n"
            f"It may attend to **{1 + n_block + n_mem}** positions: itself, {n_block} earlier in its query block "
            f"and {n_mem} in the memory; {n_masked} positions of its window are masked (generated later).")
    if cfg.pattern.kind == "full":
        text += "  \nFull attention: the window is the whole image, so every earlier position is memory."
    return text


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------

@handler
def show_visibility(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w,
                    row, col, channel):
    """Fig. 3 picture of what query (row, col, channel) may attend, the generation order, and a summary."""
    cfg = make_config(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w)
    row, col, channel = clamp_query(cfg, row, col, channel)
    gcol = col * cfg.c + channel
    codes = visibility(cfg.h, cfg.w, cfg.c, cfg.pattern, row * cfg.grid[1] + gcol)
    s = cell_scale(*cfg.grid)
    picture = mark_cell(paint_grid(codes, cfg.c), row, gcol, s)
    return picture, order_picture(cfg, row, gcol), describe(cfg, codes, row, col, channel), row, col, channel


WALK_FRAMES = 16  # queries shown by the exported animation
WALK_FPS = 4


def walk_frames(cfg: Config, rank: np.ndarray) -> list[np.ndarray]:
    """The exported animation: what a query may attend, for queries spread evenly over the generation order.
    Half the on-screen cell size: encoding 560-pixel frames as GIF took seconds here."""
    rows, cols = cfg.grid
    s = max(2, cell_scale(rows, cols) // 2)
    frames = []
    for step in np.unique(np.linspace(0, cfg.n - 1, WALK_FRAMES).round().astype(int)):
        r, gc = (int(v[0]) for v in np.nonzero(rank == step))
        codes = visibility(cfg.h, cfg.w, cfg.c, cfg.pattern, r * cols + gc)
        frames.append(mark_cell(draw_lines(paint_visibility(codes, s), rows, cols, cfg.c, s), r, gc, s))
    return frames


@handler
def export_visibility(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w, row, col, channel):
    """Downloads of the visibility view: picture, queries walking the generation order, the numbers."""
    cfg = make_config(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w)
    picture, *_ = show_visibility(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w,
                                  row, col, channel)
    row, col, channel = clamp_query(cfg, row, col, channel)
    rank = generation_rank(cfg.h, cfg.w, cfg.c, cfg.pattern).numpy().reshape(cfg.grid)
    codes = visibility(cfg.h, cfg.w, cfg.c, cfg.pattern, row * cfg.grid[1] + col * cfg.c + channel)
    p = cfg.pattern
    numbers = {"h": cfg.h, "w": cfg.w, "c": cfg.c, "kind": p.kind, "query_len": p.query_len,
               "memory_len": p.memory_len, "block_h": p.block_h, "block_w": p.block_w, "flange_h": p.flange_h,
               "flange_w": p.flange_w, "query": [row, col, channel], "grid_hw": list(cfg.grid), "visibility": codes,
               "visibility_codes": {str(k): v for k, v in FIG3_LABELS.items()}, "generation_step": rank}
    return save_exports(picture, walk_frames(cfg, rank), WALK_FPS, numbers)


@handler
def select_query(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w,
                 evt: gr.SelectData):
    """A click on either picture: pixel coordinates -> grid cell -> (row, column, channel)."""
    cfg = make_config(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w)
    s = cell_scale(*cfg.grid)
    x, y = evt.index
    gcol = min(max(int(x) // s, 0), cfg.grid[1] - 1)
    row = min(max(int(y) // s, 0), cfg.h - 1)
    return show_visibility(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w,
                           row, gcol // cfg.c, gcol % cfg.c)


@handler
def cost_table(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w, head_dim):
    """Counted cost of the pattern next to dense full attention (per head, batch of one)."""
    cfg = make_config(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w)
    d = whole("Head dimension", head_dim, 1, 4096)
    pc = pattern_cost(cfg.h, cfg.w, cfg.c, cfg.pattern, head_dim=d)
    full = pattern_cost(cfg.h, cfg.w, cfg.c, AttentionPattern("full"), head_dim=d)
    n = pc.positions
    rows = [
        ("positions N = h·w·c", human_count(n), human_count(n), "1"),
        ("query block (positions)", human_count(pc.query_block), human_count(n), ""),
        ("memory block l_m (keys scored per query block)", human_count(pc.memory_block), human_count(n),
         f"{pc.memory_block / n:.3g}"),
        ("positions a query may attend (mean)", f"{pc.attended_mean:,.1f}", f"{full.attended_mean:,.1f}",
         f"{pc.attended_mean / full.attended_mean:.3g}"),
        ("positions a query may attend (max)", human_count(pc.attended_max), human_count(full.attended_max),
         f"{pc.attended_max / full.attended_max:.3g}"),
        ("FLOPs of QKᵀ and weights·V, 4·N·l_m·d", human_count(pc.flops), human_count(pc.full_flops),
         f"{pc.flops_ratio:.3g}"),
        ("attention matrix entries (N·l_m vs N²)", human_count(pc.score_entries),
         human_count(pc.full_score_entries), f"{pc.score_entries / pc.full_score_entries:.3g}"),
        ("attention matrix, float32", human_bytes(pc.matrix_bytes), human_bytes(pc.full_matrix_bytes),
         f"{pc.matrix_bytes / pc.full_matrix_bytes:.3g}"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "this pattern", "full attention", "ratio"])


@handler
def measure_table(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w, head_dim,
                  progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
    """Time the real layer (blocked local_attention) against dense masked SDPA on random inputs."""
    cfg = make_config(h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w)
    d = whole("Head dimension", head_dim, 1, 512)
    progress(0.1, desc="timing the layer")
    m = measure_layer(cfg.h, cfg.w, cfg.c, cfg.pattern, head_dim=d, heads=1, repeats=3, dense_limit=DENSE_LIMIT)
    layer = "blocked local_attention" if cfg.pattern.kind != "full" else "causal SDPA (full)"
    if m.dense_seconds is None:
        dense_t = dense_m = ratio_t = ratio_m = f"skipped (N > {DENSE_LIMIT})"
    else:
        dense_t, dense_m = f"{m.dense_seconds * 1e3:.2f} ms", human_bytes(m.dense_peak_bytes)
        ratio_t = f"{m.local_seconds / m.dense_seconds:.3g}"
        ratio_m = f"{m.local_peak_bytes / m.dense_peak_bytes:.3g}" if m.dense_peak_bytes else ""
    rows = [
        ("layer", layer, "dense SDPA with the N×N mask", ""),
        (f"time (median of 3, 1 head, d={d})", f"{m.local_seconds * 1e3:.2f} ms", dense_t, ratio_t),
        ("peak memory allocated during the call", human_bytes(m.local_peak_bytes), dense_m, ratio_m),
        ("max |difference| of outputs", "" if m.max_abs_diff is None else f"{m.max_abs_diff:.1e}", "", ""),
    ]
    return pd.DataFrame(rows, columns=["measured", "this pattern", "dense masked", "ratio"])


MEASURE_PLACEHOLDER = pd.DataFrame([("press the button to measure", "", "", "")],
                                   columns=["measured", "this pattern", "dense masked", "ratio"])


def toggle_kind(kind):
    return gr.update(visible=kind == "local1d"), gr.update(visible=kind == "local2d")


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------

# The shipped Image Transformers' patterns (attn_models.image_transformer.model defaults), as the controls and the
# API take them: c is a Radio choice, so a string.
DEFAULTS = dict(h=28, w=28, c="1", kind="local2d", query_len=56, memory_len=112, block_h=4, block_w=14,
                flange_h=4, flange_w=7)
DEFAULT_QUERY = dict(row=13, col=12, channel=0)


def build(device: str) -> None:
    # The first pictures and table are computed at build time so the tab opens filled in.
    pic0, order0, text0, *_ = show_visibility(**DEFAULTS, **DEFAULT_QUERY)
    costs0 = cost_table(**DEFAULTS, head_dim=HEAD_DIM)
    d = DEFAULTS
    gr.Markdown(
        "### Which positions may a query attend, and what does it cost?\n"
        "The Image Transformer (Parmar et al. 2018) treats every channel of every pixel as a position, so an "
        "image of h×w×c has N = h·w·c positions. Full self-attention compares every pair, N² in all. Local "
        "attention cuts the positions into **query blocks** and lets each block attend only a **memory block** "
        "of l_m positions around it (1D: the positions just before it in raster order; 2D: a flange above, left "
        "and right), so the cost falls to N·l_m. **Click a cell** of the picture to move the query."
    )
    with gr.Row():
        with gr.Column(scale=1, min_width=280):
            with gr.Row():
                h = gr.Slider(1, MAX_SIDE, value=d["h"], step=1, label="Height h")
                w = gr.Slider(1, MAX_SIDE, value=d["w"], step=1, label="Width w")
            # String choices: Gradio documents Radio choices as strings and accepts only its listed values.
            c = gr.Radio(["1", "3"], value=d["c"], label="Channels c (each is its own position)")
            kind = gr.Radio(KIND_CHOICES, value=d["kind"], label="Attention")
            with gr.Group(visible=d["kind"] == "local1d") as group1d:
                with gr.Row():
                    query_len = gr.Number(d["query_len"], precision=0, minimum=1, label="Query block length l_q")
                    memory_len = gr.Number(d["memory_len"], precision=0, minimum=0, label="Memory before the block")
            with gr.Group(visible=d["kind"] == "local2d") as group2d:
                with gr.Row():
                    block_h = gr.Number(d["block_h"], precision=0, minimum=1, label="Query block height")
                    block_w = gr.Number(d["block_w"], precision=0, minimum=1, label="Query block width")
                with gr.Row():
                    flange_h = gr.Number(d["flange_h"], precision=0, minimum=0, label="Flange rows above")
                    flange_w = gr.Number(d["flange_w"], precision=0, minimum=0, label="Flange columns left/right")
            gr.Markdown("Query position (or click the picture):")
            with gr.Row():
                row = gr.Number(DEFAULT_QUERY["row"], precision=0, minimum=0, label="Row")
                col = gr.Number(DEFAULT_QUERY["col"], precision=0, minimum=0, label="Column")
                channel = gr.Number(DEFAULT_QUERY["channel"], precision=0, minimum=0, label="Channel")
            head_dim = gr.Number(HEAD_DIM, precision=0, minimum=1, label="Head dimension d (for cost)")
        with gr.Column(scale=2):
            with gr.Row():
                picture = gr.Image(pic0, label="What the query may attend (click a cell)", format="png",
                                   interactive=False, elem_id="explorer-visibility", scale=3,
                                   buttons=["download", "fullscreen"])
                order = gr.Image(order0, label="Generation order (dark = early)", format="png", interactive=False,
                                 elem_id="explorer-order", scale=2, buttons=["fullscreen"])
            gr.HTML(fig3_legend_html("explorer-legend"))
            summary = gr.Markdown(text0, label="Summary", show_label=False, elem_id="explorer-summary")
            gr.Markdown("**Download** the picture (PNG), queries walking through the generation order (GIF, MP4), "
                        "the pattern with its visibility codes and generation steps (NPZ, JSON)")
            exports = common.export_buttons("explorer-export")
    costs = gr.Dataframe(costs0, label="Cost per head (counted exactly from the pattern)", interactive=False,
                         elem_id="explorer-cost", wrap=True, column_widths=["46%", "18%", "18%", "18%"])
    with gr.Row():
        measure_btn = gr.Button("Measure the layer on random inputs", elem_id="explorer-measure", scale=0,
                                min_width=300)
        gr.Markdown("Times the blocked layer and dense masked SDPA (1 head, batch 1) on this machine; dense is "
                    f"skipped above {DENSE_LIMIT} positions.")
    measured = gr.Dataframe(MEASURE_PLACEHOLDER, label="Measured on this machine", interactive=False,
                            elem_id="explorer-measured", wrap=True, column_widths=["46%", "18%", "18%", "18%"])

    config = [h, w, c, kind, query_len, memory_len, block_h, block_w, flange_h, flange_w]
    vis_outputs = [picture, order, summary, row, col, channel]
    # Exports take a second (GIF and MP4 encoding), the views a few ms: the views show at once and the downloads
    # follow, from their own endpoint (explorer_export).
    common.on_arrival(lambda: export_visibility(**DEFAULTS, **DEFAULT_QUERY), exports)

    kind.change(toggle_kind, kind, [group1d, group2d], queue=False, api_visibility="private")
    gr.on([x.change for x in config] + [row.submit, col.submit, channel.submit, row.blur, col.blur, channel.blur],
          show_visibility, config + [row, col, channel], vis_outputs, api_name="explorer_visibility",
          api_description="Which positions one query may attend under a full / local 1D / local 2D pattern (Fig. 3).",
          trigger_mode="always_last", show_progress="hidden").then(
        export_visibility, config + [row, col, channel], exports, api_name="explorer_export",
        api_description="Downloads of the visibility view: picture (PNG), animation (GIF, MP4), numbers (NPZ, JSON).",
        trigger_mode="always_last", show_progress="hidden")
    for view in (picture, order):
        view.select(select_query, config, vis_outputs, api_visibility="private", show_progress="hidden").then(
            export_visibility, config + [row, col, channel], exports, api_visibility="private",
            show_progress="hidden")
    gr.on([x.change for x in config] + [head_dim.submit, head_dim.blur], cost_table, config + [head_dim], costs,
          api_name="explorer_cost", trigger_mode="always_last", show_progress="hidden",
          api_description="Cost per head of an attention pattern next to full attention, counted exactly.")
    measure_btn.click(measure_table, config + [head_dim], measured, api_name="explorer_measure",
                      concurrency_limit=1,
                      api_description="Time the blocked local attention layer against dense masked attention here.")
