"""Image Transformer training script (tiny smoke run, resume, export) and the eval script's baseline."""
import json
import math

import numpy as np
import pytest

from attn_models.image_transformer.evaluate import marginal_baseline_bpd

TINY = ["--d-model", "16", "--heads", "2", "--layers", "1", "--ffn", "16", "--batch-size", "2", "--limit", "8",
        "--no-progress", "--query-len", "28", "--memory-len", "28"]


def test_train_resume_and_export(tmp_path, fashion_mnist):
    from attn_models.image_transformer.model import ImageTransformer
    from attn_models.image_transformer.train import main

    args = TINY + ["--ckpt-root", str(tmp_path), "--name", "t"]
    state = main(args + ["--max-steps", "3"])
    assert state["step"] == 3 and state["images"] == 6
    state = main(args + ["--max-steps", "5", "--resume", "--export", str(tmp_path / "export")])
    assert state["step"] == 5  # continued, not restarted
    log = [json.loads(line) for line in (tmp_path / "t" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["bpd"]) for r in log)
    m = ImageTransformer.from_pretrained(tmp_path / "export")
    assert m.image_shape == (28, 28, 1) and m.class_conditional and m.pattern.query_len == 28
    x = fashion_mnist[2][:2, ..., None]
    assert 0 < m.bits_per_dim(x, fashion_mnist[3][:2].astype(int)) < 9


def test_batches_are_reproducible_epoch_shuffles():
    from attn_models.image_transformer.train import batch_indices

    a = np.concatenate([batch_indices(0, s, 3, 10) for s in range(10)])
    assert sorted(a[:9].tolist()) == sorted(set(a[:9].tolist()))  # no repeats inside an epoch
    assert sorted(a[:10].tolist()) == list(range(10))
    np.testing.assert_array_equal(batch_indices(0, 4, 3, 10), a[12:15])  # a resumed step gets the same batch


def test_marginal_baseline():
    # position 0 is always 0, position 1 is 0 or 255 half the time
    train = np.array([[0, 0], [0, 255]] * 50, dtype=np.uint8)
    test = np.array([[0, 255]], dtype=np.uint8)
    p0 = (100 + 1) / (100 + 256)
    p1 = (50 + 1) / (100 + 256)
    expect = -(math.log2(p0) + math.log2(p1)) / 2
    assert marginal_baseline_bpd(train, test) == pytest.approx(expect)
    assert marginal_baseline_bpd(train, test, alpha=1e-9) == pytest.approx(0.5, abs=1e-6)


def test_train_on_rgb_imagefolder(tmp_path):
    """The RGB path for users with their own data: class = sub-folder, each channel its own position."""
    from PIL import Image

    from attn_models.image_transformer.model import ImageTransformer
    from attn_models.image_transformer.train import main

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(2):  # odd sizes and modes: the loader converts and resizes
            Image.fromarray(rng.integers(0, 256, (13, 11, 3), dtype=np.uint8)).convert("RGBA").save(
                tmp_path / "data" / cls / f"{i}.png")
    args = TINY + ["--ckpt-root", str(tmp_path), "--name", "rgb", "--data", "imagefolder",
                   "--data-dir", str(tmp_path / "data"), "--image-size", "8", "--channels", "3",
                   "--max-steps", "2", "--export", str(tmp_path / "export")]
    state = main(args)
    assert state["step"] == 2
    m = ImageTransformer.from_pretrained(tmp_path / "export")
    assert m.image_shape == (8, 8, 3) and m.num_classes == 2
    out = m.sample(2, labels=[0, 1], seed=0)
    assert out.shape == (2, 8, 8, 3) and out.dtype == np.uint8
