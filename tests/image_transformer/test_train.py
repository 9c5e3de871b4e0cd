"""Image Transformer training through the scaffold (exact resume, two processes, export, RGB image folder)
and the evaluate script's baseline."""
import json
import math

import numpy as np
import pytest

from attn_models.image_transformer import train
from attn_models.image_transformer.evaluate import marginal_baseline_bpd
from attn_models.image_transformer.model import ImageTransformer
from tests.training_checks import assert_exact_resume, launch_two_processes

TINY = ["--d-model", "16", "--heads", "2", "--layers", "1", "--ffn", "16", "--batch-size", "2", "--limit", "12",
        "--val-size", "4", "--val-batch-size", "4", "--query-len", "28", "--memory-len", "28", "--log-every", "1",
        "--eval-every", "0", "--warmup-steps", "2"]


@pytest.mark.parametrize("attention", ["local1d", "local2d"])
def test_resume_is_exact(fashion_mnist, tmp_path, attention):
    assert_exact_resume(train.main, [*TINY, "--attention", attention], tmp_path, k=2)


def test_two_processes(fashion_mnist, tmp_path):
    info = launch_two_processes("attn_models.image_transformer.train", [*TINY, "--max-steps", "2"], tmp_path / "run")
    assert info["steps"] == 2


def test_export_and_logs(fashion_mnist, tmp_path):
    info = train.main([*TINY, "--max-steps", "3", "--run-dir", str(tmp_path / "run"), "--no-progress",
                       "--export", str(tmp_path / "export")])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r for r in log if "bpd" in r]
    assert [r["step"] for r in losses] == [1, 2, 3] and all(math.isfinite(r["bpd"]) for r in losses)
    assert 0 < info["final_eval"]["val_bpd"] < 9
    m = ImageTransformer.from_pretrained(tmp_path / "export")
    assert m.image_shape == (28, 28, 1) and m.class_conditional and m.pattern.query_len == 28
    x = fashion_mnist[2][:2, ..., None]
    assert 0 < m.bits_per_dim(x, fashion_mnist[3][:2].astype(int)) < 9


def test_default_run_name_follows_attention(fashion_mnist, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train.main([*TINY, "--attention", "local2d", "--max-steps", "1", "--no-progress"])
    assert (tmp_path / "runs" / "image-transformer-2d-fashion-mnist" / "checkpoint").is_dir()


def test_marginal_baseline():
    # position 0 is always 0, position 1 is 0 or 255 half the time
    train_x = np.array([[0, 0], [0, 255]] * 50, dtype=np.uint8)
    test_x = np.array([[0, 255]], dtype=np.uint8)
    p0 = (100 + 1) / (100 + 256)
    p1 = (50 + 1) / (100 + 256)
    expect = -(math.log2(p0) + math.log2(p1)) / 2
    assert marginal_baseline_bpd(train_x, test_x) == pytest.approx(expect)
    assert marginal_baseline_bpd(train_x, test_x, alpha=1e-9) == pytest.approx(0.5, abs=1e-6)


def test_train_on_rgb_imagefolder(tmp_path):
    """The RGB path for users with their own data: class = sub-folder, each channel its own position."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(3):  # odd sizes and modes: the loader converts and resizes
            Image.fromarray(rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)).convert("RGBA").save(
                tmp_path / "data" / cls / f"{i}.png")
    info = train.main([*TINY, "--run-dir", str(tmp_path / "run"), "--data", "imagefolder", "--data-dir",
                       str(tmp_path / "data"), "--image-size", "8", "--channels", "3", "--max-steps", "2",
                       "--export", str(tmp_path / "export"), "--no-progress"])
    assert info["steps"] == 2
    m = ImageTransformer.from_pretrained(tmp_path / "export")
    assert m.image_shape == (8, 8, 3) and m.num_classes == 2
    out = m.sample(2, labels=[0, 1], seed=0)
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.uint8
