"""SAGAN training CLI: a tiny ImageFolder run (made here), export, resume."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from attn_models.sagan.model import SAGAN
from attn_models.hub import build_and_load
from attn_models.sagan import train as train_gan

TINY = ["--ch", "8", "--batch-size", "4", "--standing-batches", "2", "--z-dim", "16"]


def make_image_folder(root, classes=("cat", "dog"), per_class=6):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_imagefolder_run_exports_a_loadable_rgb_model(tmp_path):
    data = make_image_folder(tmp_path / "data")
    out = tmp_path / "out"
    train_gan.main(["--name", "tiny", "--data", f"imagefolder:{data}", "--img-size", "32", "--img-channels", "3",
                    "--steps", "2", "--ckpt-root", str(tmp_path / "ck"), "--out", str(out), *TINY])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_classes"] == 2 and cfg["class_names"] == ["cat", "dog"] and cfg["img_channels"] == 3
    model = build_and_load(SAGAN, out).eval()
    gen = model.generate([0, 1, 1], seed=2)
    assert gen.images.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(gen.attention.sum(-1), 1.0, atol=1e-5)
    log = [json.loads(x) for x in (tmp_path / "ck" / "tiny" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["done"] == 2 and np.isfinite(log[-1]["loss_d"]) and "gamma" in log[0]
    assert list((tmp_path / "ck" / "tiny").glob("samples_*.png"))


def test_resume_continues_from_the_checkpoint(tmp_path):
    data = make_image_folder(tmp_path / "data")
    args = ["--name", "r", "--data", f"imagefolder:{data}", "--img-channels", "1", "--ckpt-root",
            str(tmp_path / "ck"), "--out", str(tmp_path / "out"), "--attn-res", "none", *TINY]
    train_gan.main([*args, "--steps", "2"])
    train_gan.main([*args, "--steps", "3", "--resume"])
    log = [json.loads(x) for x in (tmp_path / "ck" / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["done"] for r in log if "done" in r] == [2, 3]  # second run did one step, not three


def test_tensor_batches_are_epoch_seeded():
    import torch

    x = torch.arange(20, dtype=torch.uint8).view(20, 1, 1, 1).expand(20, 1, 2, 2).contiguous()
    b = train_gan.TensorBatches(x, torch.arange(20), batch_size=5, seed=3)
    first = [b.batch(s)[1] for s in range(4)]
    assert sorted(torch.cat(first).tolist()) == list(range(20))  # one epoch covers every image once
    torch.testing.assert_close(b.batch(2)[1], first[2])  # same step, same batch (exact resume)
