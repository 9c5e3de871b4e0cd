"""Disk use under many calls: 200 gradio_client calls across the endpoints of the launched app must leave the demo's
output folders and Gradio's cache bounded.

Where the files go:
- the demo's own output files (common.output_folder(), rotated by common.output_path: the newest
  KEEP_OUTPUT_FILES stay, older ones go once they are MIN_OUTPUT_AGE_S old) and the results shown on arrival
  (common.kept_folder(), never rotated);
- Gradio's cache, ``$GRADIO_TEMP_DIR`` or ``<tempfile.gettempdir()>/gradio`` (gradio.utils.get_upload_folder()),
  where the server copies every file a handler returns and every upload. Each Blocks records the files it put
  there (``temp_file_sets``, what its ``delete_cache`` deletes once they are an hour old); that record is what is
  measured here, because the folder itself is shared with every other Gradio process on the machine and with
  gradio_client's downloads (same folder by default).

The app runs in this process (conftest's session fixture), so MIN_OUTPUT_AGE_S is lowered here: with the served
value (300 s) nothing written during a two-minute test would be old enough to rotate and the rule would hold
trivially.
"""
from __future__ import annotations

import gc
import os
import random
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from attn_models.data import CLASS_NAMES
from demo import captioning_tab, common
from tests.demo.test_inductive_bias_tab import bias_models  # noqa: F401  (fixture: stand-ins while weights are missing)

pytestmark = pytest.mark.e2e

CALLS = 200
LIMIT_MB = 50.0
MIN_AGE_S = 1.0  # small enough that most of the run's files are old enough to rotate
PATTERN = (28, 28, "1", "local2d", 56, 112, 4, 14, 4, 7)
# Calls per endpoint (sum CALLS): mostly the cheap ones, each heavy endpoint still several times. Arguments vary
# with the call number, so most answers are new files (the same answer would be cached once, by content).
MIX = {"explorer_cost": 74, "explorer_visibility": 40, "sagan_generate": 30, "sagan_attention": 16,
       "explorer_export": 14, "bias_shift": 8, "caption": 8, "sagan_sweep": 6, "imt_sample": 4}


def arguments(endpoint: str, i: int, item_png: str) -> tuple:
    examples = captioning_tab.example_paths()
    return {
        "explorer_cost": lambda: (*PATTERN, 8 + i % 120),
        "explorer_visibility": lambda: (*PATTERN, i % 28, 7 * i % 28, 0),
        "explorer_export": lambda: (*PATTERN, 3 * i % 28, i % 28, 0),
        "sagan_generate": lambda: (CLASS_NAMES[i % 10], i, 1 + i % 4, False),
        "sagan_attention": lambda: ("bag", i, 2, False, 1, i % 32, 5 * i % 32),
        "sagan_sweep": lambda: ("coat", i, 1, False, 0, 8),
        "caption": lambda: (handle_file(examples[i % len(examples)]), ("soft", "hard")[i % 2], 1 + i % 2, True),
        "bias_shift": lambda: (handle_file(item_png), 0, i % 7 - 3, 3 - i % 5, 1 + i % 3),
        "imt_sample": lambda: (("local1d", "local2d")[i % 2], CLASS_NAMES[i % 10], 1.0, i, 1),
    }[endpoint]()


def plan() -> list[str]:
    order = [name for name, n in MIX.items() for _ in range(n)]
    random.Random(0).shuffle(order)
    assert len(order) == CALLS
    return order


# ---------------------------------------------------------------------------------------------
# Measures


def mb(nbytes: float) -> float:
    return nbytes / 2**20


def folder_bytes(folder: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:  # rotated away while walking
                pass
    return total


def served_blocks(app_url: str) -> gr.Blocks:
    """The Blocks the session fixture launched in this process (it hands out only its URL)."""
    # type(), not isinstance: isinstance reads __class__, which some lazy module objects answer with a warning.
    found = [b for b in gc.get_objects() if issubclass(type(b), gr.Blocks) and getattr(b, "local_url", None) == app_url]
    assert len(found) == 1, f"expected the one app served at {app_url}, found {len(found)}"
    return found[0]


def cache_files(blocks: gr.Blocks) -> dict[str, int]:
    """path -> size of every file the app has put in Gradio's cache and not deleted."""
    for _ in range(5):
        try:
            paths = {p for s in blocks.temp_file_sets for p in list(s)}
            break
        except RuntimeError:  # a set grew while copied (an arrival result finishing): copy again
            continue
    sizes = {}
    for p in paths:
        try:
            sizes[p] = os.lstat(p).st_size
        except OSError:
            pass
    return sizes


def rotation_problems(folder: str, keep: int, min_age_s: float) -> list[str]:
    """What breaks common.output_path's rule in ``folder``: after each new file, files beyond the newest ``keep`` are
    deleted once ``min_age_s`` old. So at most ``keep`` files plus those younger than ``min_age_s`` at the last
    write may remain; the newest name's timestamp stands for the last write (names start with time_ns, and the
    write checks the age after naming its own file), with a second of slack for requests that overlapped."""
    names = sorted(os.listdir(folder))
    stamps = [int(n.split("-", 1)[0]) for n in names if n.split("-", 1)[0].isdigit()]
    problems = []
    if len(stamps) != len(names):
        problems.append(f"{len(names) - len(stamps)} file(s) without a timestamp in their name")
    if not stamps:
        return problems
    young = sum(s > stamps[-1] - (min_age_s + 1.0) * 1e9 for s in stamps)
    if len(names) > keep + young:
        problems.append(f"{len(names)} files in {folder}, more than KEEP_OUTPUT_FILES={keep} plus the {young} "
                        f"written within {min_age_s + 1.0:g} s of the newest")
    return problems


def answer_files(value) -> set[str]:
    """Paths of the files gradio_client downloaded for an answer."""
    if isinstance(value, (list, tuple)):
        return set().union(*(answer_files(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return answer_files(list(value.values()))
    return {value} if isinstance(value, str) and os.path.isfile(value) else set()


# ---------------------------------------------------------------------------------------------


@pytest.fixture
def item_png(tmp_path) -> str:
    rng = np.random.default_rng(0)
    item = np.zeros((28, 28), np.uint8)
    item[4:24, 6:22] = rng.integers(60, 255, (20, 16))
    path = tmp_path / "item.png"
    Image.fromarray(item).save(path)
    return str(path)


def test_disk_stays_bounded_over_200_calls(client, app_url, bias_models, item_png, monkeypatch):  # noqa: F811
    monkeypatch.setattr(common, "MIN_OUTPUT_AGE_S", MIN_AGE_S)
    blocks = served_blocks(app_url)
    before = cache_files(blocks)
    downloaded: set[str] = set()
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, endpoint in enumerate(plan()):
        t = time.perf_counter()
        answer = client.submit(*arguments(endpoint, i, item_png), api_name=f"/{endpoint}").result(timeout=300)
        seconds[endpoint] = seconds.get(endpoint, 0.0) + time.perf_counter() - t
        downloaded |= answer_files(answer)
    wall = time.perf_counter() - t0

    after = cache_files(blocks)
    added = {p: s for p, s in after.items() if p not in before}
    by_kind: dict[str, int] = {}
    for p, s in added.items():
        by_kind[Path(p).suffix] = by_kind.get(Path(p).suffix, 0) + s
    outputs, kept = common.output_folder(), common.kept_folder()
    kinds = ", ".join(f"{k} {mb(v):.1f}" for k, v in sorted(by_kind.items()))
    report = (f"{CALLS} calls in {wall:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in seconds.items())}); "
              f"Gradio cache: +{mb(sum(added.values())):.1f} MB in {len(added)} files (the app's total "
              f"{mb(sum(after.values())):.1f} MB; {kinds}); client downloads "
              f"{mb(sum(map(os.path.getsize, downloaded))):.1f} MB; demo outputs {len(os.listdir(outputs))} files, "
              f"{mb(folder_bytes(outputs)):.1f} MB; kept {mb(folder_bytes(kept)):.1f} MB")
    print(report)
    assert mb(sum(added.values())) < LIMIT_MB, report
    assert mb(folder_bytes(outputs)) + mb(folder_bytes(kept)) < LIMIT_MB, report
    assert rotation_problems(outputs, common.KEEP_OUTPUT_FILES, MIN_AGE_S) == [], report


def test_the_check_catches_output_files_that_are_never_deleted(client, monkeypatch):
    """The rotation check above can fail: with deletion switched off (a KEEP_OUTPUT_FILES no folder reaches), a
    few export calls leave more files than the rule allows."""
    keep = common.KEEP_OUTPUT_FILES
    min_age = 0.2
    monkeypatch.setattr(common, "MIN_OUTPUT_AGE_S", min_age)
    monkeypatch.setattr(common, "KEEP_OUTPUT_FILES", 10**9)
    for i in range(keep // 5 + 4):  # five files per export: past `keep` whatever the folder held
        client.predict(*PATTERN, i % 28, 0, 0, api_name="/explorer_export")
        time.sleep(min_age)  # so that, however fast the machine, most files are older than min_age
    problems = rotation_problems(common.output_folder(), keep, min_age)
    assert problems and "more than KEEP_OUTPUT_FILES" in problems[0], problems


def test_where_gradio_caches(app_url):
    """The folder this test reasons about is the app's: Gradio 6 caches under $GRADIO_TEMP_DIR, else
    <tempdir>/gradio."""
    expected = os.environ.get("GRADIO_TEMP_DIR") or str((Path(tempfile.gettempdir()) / "gradio").resolve())
    assert served_blocks(app_url).GRADIO_CACHE == expected
