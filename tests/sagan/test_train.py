"""SAGAN trains through the scaffold: exact resume (G, D, EMA, optimizers), two processes, an RGB image
folder, export that loads, and a start from shipped weights."""
from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from attn_models.hub import build_and_load
from attn_models.sagan import train
from attn_models.sagan.model import SAGAN
from tests.training_checks import assert_exact_resume, launch_two_processes

TINY = ["--ch", "8", "--batch-size", "4", "--standing-batches", "2", "--z-dim", "16", "--eval-every", "0",
        "--eval-images", "0", "--log-every", "1"]


def make_image_folder(root, classes=("cat", "dog"), per_class=6):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_resume_is_exact(fashion_mnist, tmp_path):
    assert_exact_resume(train.main, [*TINY, "--limit", "64"], tmp_path, k=3)


def test_two_processes(fashion_mnist, tmp_path):
    info = launch_two_processes("attn_models.sagan.train", [*TINY, "--limit", "64", "--max-steps", "2"],
                                tmp_path / "run")
    assert info["steps"] == 2


def test_imagefolder_run_exports_a_loadable_rgb_model(tmp_path):
    data = make_image_folder(tmp_path / "data")
    out = tmp_path / "out"
    info = train.main(["--data", f"imagefolder:{data}", "--img-size", "32", "--img-channels", "3", "--max-steps", "2",
                       "--run-dir", str(tmp_path / "run"), "--export", str(out), "--no-progress", *TINY])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_classes"] == 2 and cfg["class_names"] == ["cat", "dog"] and cfg["img_channels"] == 3
    model = build_and_load(SAGAN, out).eval()
    gen = model.generate([0, 1, 1], seed=2)
    assert gen.images.shape == (3, 32, 32, 3)
    np.testing.assert_allclose(gen.attention.sum(-1), 1.0, atol=1e-5)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r for r in log if "loss_d" in r]
    assert [r["step"] for r in losses] == [1, 2] and np.isfinite(losses[-1]["loss_d"])
    assert info["epochs"] == round(2 * 4 / 12, 3)
    assert list((tmp_path / "run").glob("samples_*.png"))  # the final validation draws a grid
    gammas = [r["eval"] for r in log if "eval" in r][-1]
    assert set(gammas) == {"gamma_g16", "gamma_d16"}


def test_init_from_shipped_weights_starts_g_and_its_ema_there(tmp_path):
    """A run whose folder is gone restarts from weights/<name> (G and EMA; D fresh)."""
    shipped = SAGAN(ch=8, z_dim=16, attn_res=[16])
    shipped.save_pretrained(tmp_path / "w")
    data = make_image_folder(tmp_path / "data", classes=tuple("abcdefghij"), per_class=1)
    task = train.SAGANTask()
    training_args = ["--data", f"imagefolder:{data}", "--img-channels", "1", "--max-steps", "0",
                     "--init-from", str(tmp_path / "w"), "--run-dir", str(tmp_path / "run"), "--no-progress", *TINY]
    from attn_models import training

    training.run(task, training_args)
    want = shipped.generator.state_dict()
    for k, v in task.ema.model.state_dict().items():
        torch.testing.assert_close(v, want[k], msg=k)


def test_export_keeps_the_discriminator_and_init_from_restores_it(fashion_mnist, tmp_path):
    """The export holds D as trained (the app shows its attention and verdicts); a run started from that
    export begins with the same D."""
    out = tmp_path / "out"
    train.main([*TINY, "--limit", "64", "--max-steps", "2", "--run-dir", str(tmp_path / "run"), "--export", str(out),
                "--no-progress"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["d_attn_res"] == [16] and cfg["d_ch"] == 8
    model = build_and_load(SAGAN, out).eval()
    assert model.has_discriminator
    images = model.generate([0, 1], seed=0).images
    judged = model.discriminate(images, [0, 1])
    assert judged.attention.shape == (2, 256, 64) and np.isfinite(judged.scores).all()
    task = train.SAGANTask()
    from attn_models import training

    training.run(task, [*TINY, "--limit", "64", "--max-steps", "0", "--init-from", str(out),
                        "--run-dir", str(tmp_path / "run2"), "--no-progress"])
    want = model.discriminator.state_dict()
    for k, v in task.acc.unwrap_model(task.d).state_dict().items():
        torch.testing.assert_close(v, want[k], msg=k)
