"""Does everything give the CPU's answer on the GPU? Every registered model and every endpoint's handler, run on
the CPU and on ``--device``, outputs compared, times side by side.

    python bench/gpu_check.py                      # --device cuda: CPU vs CUDA (exits 0 with a note without CUDA)
    python bench/gpu_check.py --device cpu         # the same comparison CPU vs CPU (a dry run of the checks)
    python bench/gpu_check.py --models sagan-fashion-mnist --handlers sagan_generate --json runs/gpu_check.json

What must agree, and how closely (TOLERANCE; every difference measured is printed, whether or not it passes):
- captions: the words exactly (a beam search can branch differently on a near tie: then the words are reported
  side by side); their attention maps and gates within ``maps``;
- images (uint8, and numbers in grey levels in the downloads): at most ``image_levels`` grey levels apart, and at
  most ``image_share`` of the values more than 1 level apart, and at most ``image_step_share`` apart at all (a
  1-level step is a value that rounding put on the other side of a quantization boundary; the first CUDA run had
  them in 2-4.5% of SAGAN's pixels);
- occlusion drops and saliency (the faithfulness endpoint): within ``faithfulness``; they are differences of
  log-probabilities, and the first CUDA run moved them by up to 7e-3 (its α maps: within ``maps``, like every map);
- attention maps, probabilities, feature maps: within ``maps`` / ``probs`` (absolute), features relative to their
  largest value; teacher-forced logits within ``logits`` (absolute) and bits/dim within ``bits_per_dim`` (relative);
- text shown to the user: the same words, and the numbers in it within ``maps`` (a last printed digit may flip);
- sampled images (Image Transformer): not compared. The draws are the same uniform numbers on both devices, but a
  logit that differs in the 6th digit can move one draw across a bin edge, and every later pixel depends on it;
  the teacher-forced logits and bits/dim above are what pins the model. Sampling is reported as timings (and the
  share of equal pixels, for information).
Downloads are compared by what they hold (decoded PNG/GIF frames, NPZ arrays, parsed JSON); MP4s are encodings of
the GIF's frames and are not decoded. PNG/GIF figures are drawings of numbers compared elsewhere in the same
answer; a colour map, a GIF palette, an antialiased edge or a printed digit turns a 1e-3 difference into a large
one on a few pixels (the first CUDA run: up to 255 levels on 0.2-3.5% of values), so they are held only to
``render_levels`` / ``render_share``, which still fails a blank, shifted or different figure.

The GPU keeps its defaults (as the app runs): cuDNN may use TF32 for convolutions, which is what the tolerances
allow for. Timings: one untimed call first on each device (CUDA start-up, kernel selection, model load), then the
median of ``--repeats`` calls, torch on ``--threads`` threads on the CPU. Exit status 1 when a comparison fails.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOLERANCE = {
    "maps": 2e-3,  # attention maps and gates (sum to 1 over tens of cells); TF32 convolutions upstream
    "probs": 2e-3,  # class probabilities
    "features": 1e-2,  # feature maps, relative to the map's largest magnitude
    "logits": 5e-2,  # teacher-forced logits (range about +-20): absolute
    "bits_per_dim": 1e-3,  # relative
    "faithfulness": 2e-2,  # occlusion drops, saliency, their correlations: differences of log-probabilities
    "image_levels": 2,  # uint8 images (and values in grey levels): largest difference in grey levels ...
    "image_share": 0.01,  # ... share of values more than 1 level apart, and ...
    "image_step_share": 0.10,  # ... share of values apart at all: a 1-level step is a value that rounding put on
    # the other side of a quantization boundary (2-4.5% of SAGAN's pixels on the first CUDA run); an offset of
    # every value is not
    "render_levels": 8,  # rendered figures (PNG/GIF files): colour maps, palettes, antialiased edges and printed
    "render_share": 0.05,  # digits turn tiny differences into large ones on few pixels: at most this share
    # of values more than render_levels apart (a blank, shifted or different figure fails)
}
# Values in grey levels (0-255 or differences of them) that the downloads hold as numbers: compared as images.
GREY_LEVEL_KEYS = ("image", "images", "knocked_out", "difference")
# Keys whose values have their own kind, whatever answer they sit in: the discriminator's hinge-loss scores in the
# downloads are logits; the attention maps inside the faithfulness answer are maps (its drops and correlations
# take the looser "faithfulness" tolerance, not its maps).
KEY_TOLERANCE = {"score": "logits", "alpha": "maps"}
NO_CUDA = "no CUDA device"


# ---------------------------------------------------------------------------------------------
# Comparing two answers


@dataclasses.dataclass
class Diff:
    """The worst differences found between two answers; ``problems`` says which broke a tolerance."""

    float_max: float = 0.0
    image_levels: int = 0
    image_share: float = 0.0
    text: int = 0  # strings whose words differ
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        parts = [f"float {self.float_max:.1e}"]
        if self.image_levels or self.image_share:
            parts.append(f"images {self.image_levels} levels / {100 * self.image_share:.2f}%")
        if self.text:
            parts.append(f"{self.text} text(s) differ")
        return ", ".join(parts)


NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def compare_arrays(a: np.ndarray, b: np.ndarray, where: str, d: Diff, tol: float, relative: bool = False) -> None:
    if a.shape != b.shape:
        d.problems.append(f"{where}: shape {a.shape} vs {b.shape}")
        return
    if a.size == 0:
        return
    if a.dtype == np.uint8 and b.dtype == np.uint8:
        compare_levels(a, b, where, d)
        return
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        if not np.array_equal(a, b):
            d.problems.append(f"{where}: {a.dtype} arrays differ")
        return
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.array_equal(np.isfinite(a64), np.isfinite(b64)):
        d.problems.append(f"{where}: non-finite values in different places")
        return
    fin = np.isfinite(a64)
    err = float(np.abs(a64[fin] - b64[fin]).max()) if fin.any() else 0.0
    if relative:
        err /= max(float(np.abs(a64[fin]).max()) if fin.any() else 0.0, 1e-12)
    d.float_max = max(d.float_max, err)
    if err > tol:
        d.problems.append(f"{where}: max difference {err:.2e} > {tol:g}{' (relative)' if relative else ''}")


def compare_levels(a: np.ndarray, b: np.ndarray, where: str, d: Diff, rendered: bool = False) -> None:
    """Images, or numbers in grey levels; ``rendered``: decoded PNG/GIF figures (TOLERANCE says why they differ)."""
    if a.shape != b.shape:
        d.problems.append(f"{where}: shape {a.shape} vs {b.shape}")
        return
    diff = np.abs(np.rint(a.astype(np.float64)) - np.rint(b.astype(np.float64)))
    if diff.size == 0:
        return
    levels, share = int(diff.max()), float((diff > 0).mean())
    if levels == 0:
        return
    d.image_levels, d.image_share = max(d.image_levels, levels), max(d.image_share, share)
    what = "renderings" if rendered else "images"
    said = f"{where}: {what} differ by up to {levels} levels in {100 * share:.2f}% of values"
    if rendered:
        bad = float((diff > TOLERANCE["render_levels"]).mean()) > TOLERANCE["render_share"]
    else:
        bad = (levels > TOLERANCE["image_levels"] or float((diff > 1).mean()) > TOLERANCE["image_share"]
               or share > TOLERANCE["image_step_share"])
    (d.problems if bad else d.notes).append(said)


def compare_text(a: str, b: str, where: str, d: Diff) -> None:
    if a == b:
        return
    words_a, words_b = NUMBER.split(a), NUMBER.split(b)
    nums_a, nums_b = NUMBER.findall(a), NUMBER.findall(b)
    if words_a == words_b and len(nums_a) == len(nums_b):
        errs = [abs(float(x) - float(y)) for x, y in zip(nums_a, nums_b, strict=True)]
        if max(errs, default=0.0) <= TOLERANCE["maps"] * 10:  # printed with 3 to 4 decimals
            d.notes.append(f"{where}: a printed number differs by {max(errs):.1e}")
            return
    d.text += 1
    d.problems.append(f"{where}: text differs: {a[:120]!r} vs {b[:120]!r}")


def is_file(text: str) -> bool:
    return len(text) < 4096 and "\n" not in text and os.path.isfile(text)


@dataclasses.dataclass
class Rendering:
    """The frames of a PNG/GIF download: a drawing of numbers that are compared elsewhere in the same answer."""

    frames: np.ndarray


def file_content(path: str):
    """What a download holds: decoded frames, arrays, parsed JSON; None for files not compared (MP4)."""
    from PIL import Image, ImageSequence

    suffix = Path(path).suffix.lower()
    if suffix in (".png", ".gif", ".webp", ".jpg", ".jpeg"):
        with Image.open(path) as im:
            return Rendering(np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]))
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    if suffix == ".json":
        return json.loads(Path(path).read_text())
    return None


def compare(a, b, where: str = "", d: Diff | None = None, tol: float | None = None) -> Diff:
    """Walk two answers side by side (tuples, dicts, arrays, files, text, numbers, dataclasses, data frames)."""
    d = Diff() if d is None else d
    tol = TOLERANCE["maps"] if tol is None else tol
    if type(a).__name__ == "DataFrame":
        if list(a.columns) != list(b.columns):
            d.problems.append(f"{where}: columns {list(a.columns)} vs {list(b.columns)}")
            return d
        return compare(a.to_dict("list"), b.to_dict("list"), where, d, tol)
    if isinstance(a, Rendering) and isinstance(b, Rendering):
        compare_levels(a.frames, b.frames, where, d, rendered=True)
        return d
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return compare(vars(a), vars(b), where, d, tol)
    if hasattr(a, "cpu") and hasattr(a, "numpy"):  # a tensor
        return compare(a.detach().cpu().numpy(), b.detach().cpu().numpy(), where, d, tol)
    if isinstance(a, dict):
        if set(a) != set(b):
            d.problems.append(f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}")
            return d
        for k in a:
            if k in GREY_LEVEL_KEYS and isinstance(a[k], (list, np.ndarray)):
                compare_levels(np.asarray(a[k]), np.asarray(b[k]), f"{where}.{k}", d)
            else:
                compare(a[k], b[k], f"{where}.{k}", d, TOLERANCE[KEY_TOLERANCE[k]] if k in KEY_TOLERANCE else tol)
        return d
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            d.problems.append(f"{where}: {len(a)} vs {len(b)} items")
            return d
        if a and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (*a, *b)):
            return compare(np.asarray(a, np.float64), np.asarray(b, np.float64), where, d, tol)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            compare(x, y, f"{where}[{i}]", d, tol)
        return d
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        compare_arrays(np.asarray(a), np.asarray(b), where, d, tol)
        return d
    if isinstance(a, str) and isinstance(b, str):
        if is_file(a) and is_file(b):
            ca, cb = file_content(a), file_content(b)
            if ca is not None:
                compare(ca, cb, f"{where}<{Path(a).suffix}>", d, tol)
            return d
        compare_text(a, b, where, d)
        return d
    if isinstance(a, (bool, type(None))) or isinstance(b, (bool, type(None))):
        if a != b:
            d.problems.append(f"{where}: {a!r} vs {b!r}")
        return d
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        fa, fb = float(a), float(b)
        if math.isnan(fa) and math.isnan(fb):
            return d
        err = abs(fa - fb)
        d.float_max = max(d.float_max, err)
        if not err <= tol * max(1.0, abs(fa)):
            d.problems.append(f"{where}: {fa:.6g} vs {fb:.6g}")
        return d
    if type(a).__module__.startswith("PIL"):
        return compare(np.asarray(a), np.asarray(b), where, d, tol)
    if a != b:
        d.problems.append(f"{where}: {type(a).__name__} values differ")
    return d


# ---------------------------------------------------------------------------------------------
# Checks: each runs on one device and returns (the answer to compare, an answer kept only for timing or None)


@dataclasses.dataclass
class Check:
    name: str
    kind: str  # "model" or "handler"
    run: Callable[[str], object]  # device -> answer
    compare: Callable[[object, object], Diff] = compare
    note: str = ""
    needs: tuple[str, ...] = ()  # registry models the handler loads: skipped when one has no bundled weights


def example_image():
    from PIL import Image

    with Image.open(ROOT / "demo" / "examples" / "scene_0002.png") as im:
        return im.convert("RGB")


def fashion_items(n: int = 8) -> np.ndarray:
    """Deterministic 28x28 items (bright blobs on black) without needing the data set."""
    rng = np.random.default_rng(0)
    out = np.zeros((n, 28, 28), np.uint8)
    out[:, 4:24, 6:22] = rng.integers(40, 255, (n, 20, 16))
    return out


def model_checks(names: list[str]) -> tuple[list[Check], list[str]]:
    """One check per registered model (with bundled weights); the names skipped, with why."""
    import torch

    from attn_models import load
    from attn_models.registry import get_spec, has_local_weights

    checks, skipped = [], []
    for name in names:
        spec = get_spec(name)
        if not has_local_weights(spec):
            skipped.append(f"{name}: no bundled weights in {spec.local_dir} (not checked)")
            continue

        def get(device, name=name):
            return load(name, device=device, source="local")

        if spec.task == "captioning":
            def run(device, get=get):
                c = get(device).caption(example_image(), beam_size=3)
                return {"words": list(c.words), "alphas": np.asarray(c.alphas, np.float32),
                        "betas": None if c.betas is None else np.asarray(c.betas, np.float32)}

            def cmp(a, b):
                d = Diff()
                if a["words"] != b["words"]:
                    d.text += 1
                    d.problems.append(f"words differ: {' '.join(a['words'])!r} vs {' '.join(b['words'])!r}")
                    return d
                compare(a["alphas"], b["alphas"], "alphas", d, TOLERANCE["maps"])
                return compare(a["betas"], b["betas"], "betas", d, TOLERANCE["maps"])

            checks.append(Check(name, "model", run, cmp, "caption(beam 3): words, alphas, betas"))
        elif spec.task == "sagan":
            def run(device, get=get):
                m = get(device)
                g = m.generate([k % 10 for k in range(16)], seed=0)
                out = {"images": g.images, "attention": g.attention, "gammas": g.gammas}
                if m.vis_layer is not None:
                    out["knocked_out"] = m.generate([3], seed=0, knockout=37).images
                if m.has_discriminator:  # D judges the CPU's images on both devices: the same inputs
                    judged = m.discriminate(get("cpu").generate([k % 10 for k in range(16)], seed=0).images,
                                            [k % 10 for k in range(16)])
                    out.update(d_scores=judged.scores, d_attention=judged.attention)
                return out

            checks.append(Check(name, "model", run,
                                note="generate(16): images, attention, gammas; a knocked-out query; D's scores and "
                                     "attention when the export has D"))
        elif spec.task == "image_transformer":
            def run(device, get=get):
                m = get(device)
                images = get("cpu").sample(2, [3, 8], seed=0)  # the same inputs on both devices
                return {"logits": m.logits(images, [3, 8]).numpy(), "bits_per_dim": m.bits_per_dim(images, [3, 8])}

            def cmp(a, b):
                d = compare(a["logits"], b["logits"], "logits", tol=TOLERANCE["logits"])
                err = abs(a["bits_per_dim"] - b["bits_per_dim"]) / abs(a["bits_per_dim"])
                d.float_max = max(d.float_max, err)
                if err > TOLERANCE["bits_per_dim"]:
                    d.problems.append(f"bits/dim: {a['bits_per_dim']:.6f} vs {b['bits_per_dim']:.6f}")
                return d

            checks.append(Check(name, "model", run, cmp, "teacher-forced logits and bits/dim of 2 images"))

            def sample(device, get=get):
                return get(device).sample(4, [0, 1, 2, 3], seed=0)

            def same_pixels(a, b):
                d = Diff()
                d.notes.append(f"{100 * float((a == b).mean()):.1f}% of sampled pixels equal (not required)")
                return d

            checks.append(Check(f"{name} sample(4)", "model", sample, same_pixels, "sampling: timing only"))
        elif spec.task == "classifier":
            def run(device, get=get):
                return get(device).predict_proba(torch.from_numpy(fashion_items()))

            checks.append(Check(name, "model", run, lambda a, b: compare(a, b, "probs", tol=TOLERANCE["probs"]),
                                "predict_proba(8)"))
        elif spec.task == "inductive_bias":
            def run(device, get=get):
                from attn_models.inductive_bias.model import place

                m = get(device)
                items = fashion_items()
                with torch.no_grad():
                    feats = m.features(place(torch.from_numpy(items), 2, -3).to(device))
                return {"probs": m.predict_proba(items, 2, -3), "features": [f.cpu().numpy() for f in feats]}

            def cmp(a, b):
                d = compare(a["probs"], b["probs"], "probs", tol=TOLERANCE["probs"])
                for i, (x, y) in enumerate(zip(a["features"], b["features"], strict=True)):
                    compare_arrays(x, y, f"features[{i}]", d, TOLERANCE["features"], relative=True)
                return d

            checks.append(Check(name, "model", run, cmp, "predict_proba and features of 8 items moved (2, -3)"))
        else:
            skipped.append(f"{name}: task {spec.task!r} has no check here yet")
    return checks, skipped


def rendered_at(answer: tuple, i: int) -> tuple:
    """The answer with output ``i``, a figure returned as an array, marked as a rendering (TOLERANCE)."""
    return (*answer[:i], Rendering(np.asarray(answer[i])), *answer[i + 1:])


def handler_checks(tmp: Path) -> dict[str, Check]:
    """endpoint -> a call of its handler, as tests/demo/test_*_tab.py call them (common.set_device picks where
    the tabs' models run)."""
    from demo import captioning_tab as cap
    from demo import explorer_tab as ex
    from demo import image_transformer_tab as imt
    from demo import inductive_bias_tab as bias
    from demo import sagan_tab as sg

    scene = str(ROOT / "demo" / "examples" / "scene_0002.png")
    pattern = (28, 28, "1", "local2d", 56, 112, 4, 14, 4, 7)
    quiet = lambda *a, **k: None  # noqa: E731 - Gradio's progress callback

    def last(gen):  # a streaming handler's final answer
        *_, final = gen
        return final

    def sampled(a, b):  # sampling endpoints: the pictures depend on every draw (see the module docstring)
        d = Diff()
        d.notes.append("sampled: not compared")
        return d

    item = tmp / "item.png"
    from PIL import Image

    Image.fromarray(fashion_items(1)[0]).save(item)
    checks = {
        "caption": Check("caption", "handler", lambda dev: cap.caption(scene, "soft", 3, True),
                         needs=(cap.MODEL_NAMES["soft"],)),
        "sagan_generate": Check("sagan_generate", "handler", lambda dev: sg.generate("bag", 0, 8, False),
                                needs=(sg.MODEL_NAME,)),
        "sagan_attention": Check("sagan_attention", "handler",
                                 lambda dev: sg.attention(sg.MIXED, 9, 6, False, 4, 7, 21), needs=(sg.MODEL_NAME,)),
        "sagan_sweep": Check("sagan_sweep", "handler", lambda dev: sg.sweep("coat", 2, 3, False, 2, 10),
                             needs=(sg.MODEL_NAME,)),
        "sagan_interpolate": Check("sagan_interpolate", "handler", lambda dev: sg.interpolate("bag", 3, 4, 5, False),
                                   needs=(sg.MODEL_NAME,)),
        # Its second output is a figure (the difference drawn in a colour scale whose ends are the largest change).
        "sagan_knockout": Check("sagan_knockout", "handler",
                                lambda dev: sg.knockout(sg.MIXED, 9, 6, False, 4, 7, 21),
                                lambda a, b: compare(rendered_at(a, 1), rendered_at(b, 1)), needs=(sg.MODEL_NAME,)),
        "sagan_discriminator_attention": Check(
            "sagan_discriminator_attention", "handler",
            lambda dev: sg.discriminator_attention("bag", 0, 4, False, 2, sg.GENERATED, 0, 16, 16),
            needs=(sg.MODEL_NAME,)),
        "imt_sample": Check("imt_sample", "handler",
                            lambda dev: last(imt.sample("local2d", "dress", 1.0, 0, 4, progress=quiet)), sampled,
                            "sampling: timing only", (imt.MODEL_NAMES["local2d"],)),
        "imt_complete": Check("imt_complete", "handler",
                              lambda dev: imt.complete("local1d", np.asarray(example_image()), 14, 2,
                                                       imt.EACH_CLASS_NAME, 1.0, 0), sampled,
                              "sampling: timing only", (imt.MODEL_NAMES["local1d"],)),
        "imt_complete_mask": Check("imt_complete_mask", "handler",
                                   lambda dev: imt.complete_mask(imt.example_drawing(), "local2d",
                                                                 imt.EACH_CLASS_NAME, 1.0, 0, 2), sampled,
                                   "sampling: timing only", (imt.MODEL_NAMES["local2d"],)),
        "explorer_visibility": Check("explorer_visibility", "handler",
                                     lambda dev: ex.show_visibility(*pattern, 13, 12, 0), note="no model"),
        "explorer_export": Check("explorer_export", "handler", lambda dev: ex.export_visibility(*pattern, 5, 6, 0),
                                 note="no model"),
        "explorer_cost": Check("explorer_cost", "handler", lambda dev: ex.cost_table(*pattern, 64), note="no model"),
        # It times random inputs on the CPU whatever the app's device (measure_table passes none): only the rows
        # it reports are compared, not the timings.
        "explorer_measure": Check("explorer_measure", "handler",
                                  lambda dev: ex.measure_table(*pattern, 16, progress=quiet),
                                  lambda a, b: compare(list(a["measured"]), list(b["measured"]), "rows"),
                                  "no model; timings not compared"),
        "bias_shift": Check("bias_shift", "handler", lambda dev: bias.bias_shift(str(item), 0, 2, -3, 2),
                            needs=tuple(bias.MODELS.values())),
    }
    # Endpoints added to the tabs since this list was written are checked when their handler takes the caption
    # tab's arguments; the others show up as "not covered" in the report.
    faithful = lambda a, b: compare(a, b, tol=TOLERANCE["faithfulness"])  # noqa: E731
    for extra, cmp in (("caption_beams", compare), ("caption_faithfulness", faithful)):
        fn = getattr(cap, extra, None)
        if fn is not None:
            checks[extra] = Check(extra, "handler", lambda dev, fn=fn: fn(scene, "soft", 3), cmp,
                                  needs=(cap.MODEL_NAMES["soft"],))
    return checks


def endpoints() -> list[str]:
    """Every api_name the tabs declare, read from their source: building the app would also start computing the
    results shown on arrival."""
    names = set()
    for path in (ROOT / "demo").glob("*_tab.py"):
        names.update(re.findall(r'api_name="(\w+)"', path.read_text()))
    return sorted(names)


# ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeats: int, device: str) -> tuple[object, float, float]:
    """(answer, seconds of the untimed first call, median seconds of ``repeats`` more)."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    t = time.perf_counter()
    out = fn()
    sync()
    first = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return out, first, statistics.median(times) if times else first


def run_check(check: Check, device: str, repeats: int) -> dict:
    from demo import common

    row = {"name": check.name, "kind": check.kind, "note": check.note}
    answers = {}
    for side, dev in (("cpu", "cpu"), ("device", device)):
        common.set_device(dev)
        try:
            answers[side], row[f"{side}_first_s"], row[f"{side}_s"] = timed(lambda d=dev: check.run(d), repeats, dev)
        except Exception as e:  # noqa: BLE001 - reported as the check's result, the others still run
            row.update(ok=False, error=f"on {dev}: {type(e).__name__}: {str(e)[:300]}")
            return row
        finally:
            common.set_device("cpu")
    try:
        d = check.compare(answers["cpu"], answers["device"])
    except Exception as e:  # noqa: BLE001 - an answer this comparison does not understand: say so, go on
        row.update(ok=False, error=f"comparing: {type(e).__name__}: {str(e)[:300]}")
        return row
    row.update(ok=d.ok, summary=d.summary(), problems=d.problems[:10], notes=d.notes[:5])
    return row


def report(rows: list[dict], device: str, skipped: list[str], uncovered: list[str], out=print) -> None:
    import torch

    out(f"torch {torch.__version__}, CPU ({torch.get_num_threads()} threads) vs {device}"
        + (f" ({torch.cuda.get_device_name()})" if device.startswith("cuda") else ""))
    out(f"{'check':<52}{'cpu s':>8}{device + ' s':>10}{'speedup':>9}  result")
    for r in rows:
        if "error" in r:
            out(f"{r['name']:<52}{'':>8}{'':>10}{'':>9}  ERROR {r['error']}")
            continue
        speed = r["cpu_s"] / r["device_s"] if r["device_s"] > 0 else float("inf")
        result = "ok" if r["ok"] else "DIFF"
        out(f"{r['kind'][0] + ' ' + r['name']:<52}{r['cpu_s']:>8.3f}{r['device_s']:>10.3f}{speed:>9.2f}  {result}: "
            f"{r['summary']}{'; ' + r['note'] if r['note'] else ''}")
        for line in r["problems"] + r["notes"]:
            out(f"{'':<6}{line}")
    for line in skipped:
        out(f"skipped {line}")
    for name in uncovered:
        out(f"not covered: endpoint /{name} has no check in bench/gpu_check.py yet")
    out(f"m = model through the library, h = endpoint handler; times: median of the timed calls after one untimed "
        f"call per device. Tolerances: {TOLERANCE}")


def skip_mp4_without_ffmpeg() -> str | None:
    """A GPU machine may have no ffmpeg (imageio-ffmpeg's wheel, which carries one, is 68 MB). The MP4 exports are
    encoded by an ffmpeg process on the CPU whatever the device and are not compared (module docstring), so without
    one they are written empty, and the report says so: the timings of the exporting handlers then leave it out."""
    try:
        from imageio_ffmpeg import get_ffmpeg_exe

        get_ffmpeg_exe()
        return None
    except (ImportError, RuntimeError) as e:
        from demo import render

        def empty_mp4(path, stack, fps):
            Path(path).write_bytes(b"")
            return lambda: None

        render._start_mp4 = empty_mp4
        return f"MP4 encoding: no ffmpeg here ({type(e).__name__}: {e}); MP4 exports written empty, not timed"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--device", default="cuda", help="the device compared with the CPU (default cuda; cpu: a dry run)")
    p.add_argument("--models", nargs="*", help="registry names (default: every registered model)")
    p.add_argument("--handlers", nargs="*", help="endpoint names (default: every endpoint)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per device after the untimed one")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU (default 2)")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--progress", action="store_true", help="name each check on stderr as it finishes")
    args = p.parse_args(argv)

    import tempfile

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"{NO_CUDA}: torch {torch.__version__} sees no CUDA GPU, so there is nothing to compare. "
              "Run this on a GPU machine, or use --device cpu for a CPU-vs-CPU dry run of the checks.")
        return 0
    torch.set_num_threads(args.threads)
    mp4_note = skip_mp4_without_ffmpeg()
    from attn_models import list_models

    names = list_models() if args.models is None else args.models
    checks, skipped = model_checks(names)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        available = handler_checks(Path(tmp))
        wanted = list(available) if args.handlers is None else args.handlers
        unknown = [h for h in wanted if h not in available]
        if unknown:
            p.error(f"no check for endpoint(s) {', '.join(unknown)}; known: {', '.join(available)}")
        uncovered = [e for e in endpoints() if e not in available] if args.handlers is None else []
        from attn_models.registry import get_spec, has_local_weights

        for h in wanted:
            missing = [n for n in available[h].needs if not has_local_weights(get_spec(n))]
            if missing:
                skipped.append(f"/{h}: no bundled weights for {', '.join(missing)} (not checked)")
            else:
                checks.append(available[h])
        rows = []
        for c in checks:
            rows.append(run_check(c, args.device, args.repeats))
            if args.progress:
                print(f"  {c.name}: {'ok' if rows[-1].get('ok') else 'DIFF/ERROR'}", file=sys.stderr, flush=True)
    report(rows, args.device, skipped + ([mp4_note] if mp4_note else []), uncovered)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": args.device, "torch": torch.__version__,
                                               "tolerance": TOLERANCE, "rows": rows, "skipped": skipped,
                                               "not_covered": uncovered}, indent=1, default=str) + "\n")
    return 0 if all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
