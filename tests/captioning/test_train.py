"""Both training stages through the scaffold on tiny settings (exact resume, two processes, export that loads),
the tag pretraining's pieces, and the Karpathy-JSON captions dataset."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from attn_models.captioning import pretrain, train
from attn_models.captioning.model import ShowAttendTell
from attn_models.data.captions import SPECIALS, KarpathyCaptions, build_vocab
from attn_models.data.fashion_mnist import load_fashion_mnist
from attn_models.data.scenes import COLOURS
from attn_models.hub import build_and_load
from tests.training_checks import assert_exact_resume, checkpoint_tensors, launch_two_processes

SHAPE = ["--encoder-channels", "8", "--encoder-widths", "4", "6", "8"]
SCAFFOLD = ["--batch-size", "4", "--log-every", "1", "--eval-every", "2", "--warmup-steps", "2"]
TINY_ENC = [*SHAPE, *SCAFFOLD, "--pretrain-canvas", "32", "--eval-items", "20"]
TINY_DEC = [*SHAPE, *SCAFFOLD, "--embed-dim", "8", "--hidden-dim", "16", "--attn-dim", "8", "--eval-scenes", "3"]
HARD = ["--attention", "hard", "--expect-prob", "0.25"]  # most captions sample locations: REINFORCE every step


def log_records(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def task_state(run_dir):
    return {k.split("/", 1)[1]: v for k, v in checkpoint_tensors(run_dir).items()
            if k.startswith("task_state.safetensors/")}


# ---- stage 1: encoder pretraining ------------------------------------------------------------------------
def test_pretrain_resume_is_exact(fashion_mnist, tmp_path):
    assert_exact_resume(pretrain.main, [*TINY_ENC, "--tag-loss", "cells", "--flip", "--weight-decay", "0.01"],
                        tmp_path, k=2)


def test_pretrain_two_processes(fashion_mnist, tmp_path):
    info = launch_two_processes("attn_models.captioning.pretrain", [*TINY_ENC, "--max-steps", "2"], tmp_path / "run")
    assert info["steps"] == 2 and info["segments"][0]["num_processes"] == 2
    assert set(info["final_eval"]) == {"val_colour_acc", "val_class_acc", "val_class_ce"}


def test_cell_targets_label_the_cells_whose_centre_is_in_the_box():
    # a 28x28 item at (y, x) = (0, 12) on a 40x40 canvas: cell centres 4, 12, 20, 28, 36
    t = pretrain.cell_targets(torch.tensor([[0, 12]]), torch.tensor([3]), background=10, grid=5)[0]
    expect = torch.full((5, 5), 10)
    expect[0:3, 1:5] = 3  # rows with centre 4..20 (< 28), columns with centre 12..36 (>= 12)
    assert torch.equal(t, expect)


def test_per_cell_tag_pretraining_learns_where_the_item_is(tmp_path, fashion_mnist):
    """The 'cells' loss starts from given encoder weights and trains the background logits: a short run
    tells item cells from background cells far better than the majority guess (tiny net, few steps)."""
    tiny = ["--encoder-channels", "8", "--eval-items", "20", "--no-progress"]
    pretrain.main([*tiny, "--max-steps", "2", "--batch-size", "4", "--run-dir", str(tmp_path / "e1"),
                   "--export", str(tmp_path / "e1w")])
    pretrain.main([*tiny, "--max-steps", "150", "--batch-size", "16", "--lr", "1e-2", "--tag-loss", "cells",
                   "--encoder-init", str(tmp_path / "e1w"), "--run-dir", str(tmp_path / "e2"),
                   "--export", str(tmp_path / "e2w")])
    net = pretrain.TagNet(8, background=True)
    net.load_state_dict(load_file(str(tmp_path / "e2w" / pretrain.TAG_NET_FILE)))
    net.eval()
    images, labels = fashion_mnist[2], fashion_mnist[3]  # test items
    x, _, cls, offs = pretrain.item_canvases(np.random.default_rng(5), images, labels, 64, 40, with_offsets=True)
    with torch.no_grad():
        col_cells, cls_cells = net(x, per_cell=True)
    assert col_cells.shape == (64, 9, 5, 5) and cls_cells.shape == (64, 11, 5, 5)
    is_bg = pretrain.cell_targets(offs, cls, 10, 5) == 10
    predicted_bg = cls_cells.argmax(1) == 10
    majority = max(float(is_bg.float().mean()), 1 - float(is_bg.float().mean()))
    acc = float((predicted_bg == is_bg).float().mean())
    assert acc > max(0.85, majority + 0.1)


# ---- stage 2: the decoder --------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["soft", "hard-sentence", "hard-to_go-pool"])
def test_decoder_resume_is_exact(fashion_mnist, tmp_path, variant):
    """Soft with the doubly stochastic penalty on fresh scenes; hard with either reward, the REINFORCE baseline
    carried across the resume in the task state (from the encoded pool for to_go)."""
    extra = {"soft": ["--ds-lambda", "0.01"],
             "hard-sentence": [*HARD, "--reward", "sentence"],
             "hard-to_go-pool": [*HARD, "--reward", "to_go", "--reward-discount", "0.5", "--feature-pool", "12",
                                 "--pool-cache", str(tmp_path / "pool.safetensors")]}[variant]
    assert_exact_resume(train.main, [*TINY_DEC, *extra], tmp_path, k=2)
    state = task_state(tmp_path / "twice")
    if variant == "soft":
        assert state == {}
    else:
        key = train.BASELINE_KEYS[variant.split("-")[1]]
        assert list(state) == [key] and torch.isfinite(state[key]).all()
        assert state[key].dim() == (1 if "to_go" in variant else 0)
    assert json.loads((tmp_path / "twice" / "train_info.json").read_text())["name"] == \
        f"sat-{variant.split('-')[0]}-fashion-scenes"


def test_hard_decoder_two_processes(fashion_mnist, tmp_path):
    """Two processes: one encodes and caches the pool, both train; they share one REINFORCE baseline."""
    args = [*TINY_DEC, *HARD, "--reward", "to_go", "--feature-pool", "12", "--pool-cache",
            str(tmp_path / "pool.safetensors"), "--max-steps", "2"]
    info = launch_two_processes("attn_models.captioning.train", args, tmp_path / "run")
    assert info["steps"] == 2 and info["segments"][0]["num_processes"] == 2
    assert (tmp_path / "pool.safetensors").exists()
    assert list(task_state(tmp_path / "run")) == [train.BASELINE_KEYS["to_go"]]
    assert set(info["final_eval"]) == {"val_recall", "val_att_correctness"}


def test_pool_cache_of_other_scenes_is_refused(fashion_mnist, tmp_path):
    """The pool file records its scenes and encoder: a run with another seed must not pair its captions with the
    cached features of other images."""
    cache = tmp_path / "pool.safetensors"
    base = [*TINY_DEC, "--feature-pool", "12", "--pool-cache", str(cache), "--max-steps", "1", "--no-progress"]
    train.main([*base, "--seed", "0", "--run-dir", str(tmp_path / "a")])
    written = cache.stat().st_mtime_ns
    train.main([*base, "--seed", "0", "--run-dir", str(tmp_path / "b")])  # the same scenes: the cache is read
    assert cache.stat().st_mtime_ns == written
    with pytest.raises(SystemExit, match="delete it or name another --pool-cache"):
        train.main([*base, "--seed", "1", "--run-dir", str(tmp_path / "c")])


def test_pool_cache_of_the_other_encoder_view_is_refused(fashion_mnist, tmp_path):
    """--encoder-flip-average encodes the same scenes into other features: a pool written without it is refused,
    and the flag reaches the export's config."""
    def run(cache, *more):
        train.main([*TINY_DEC, "--feature-pool", "12", "--pool-cache", str(tmp_path / cache), "--max-steps", "1",
                    "--no-progress", *more])

    run("pool.safetensors", "--run-dir", str(tmp_path / "a"))
    with pytest.raises(SystemExit, match="delete it or name another --pool-cache"):
        run("pool.safetensors", "--encoder-flip-average", "--run-dir", str(tmp_path / "b"))
    run("pool-flip.safetensors", "--encoder-flip-average", "--run-dir", str(tmp_path / "c"),
        "--export", str(tmp_path / "c-w"))
    assert json.loads((tmp_path / "c-w" / "config.json").read_text())["encoder_flip_average"] is True


@pytest.fixture(scope="module")
def stages(tmp_path_factory, fashion_mnist):
    """Stage 1 exported, then a hard decoder on it: 2 steps, stop, resume to 4 with --export."""
    root = tmp_path_factory.mktemp("stages")
    pretrain.main([*TINY_ENC, "--flip", "--weight-decay", "0.01", "--max-steps", "3", "--no-progress",
                   "--run-dir", str(root / "enc"), "--export", str(root / "enc-w")])
    common = [*TINY_DEC, "--attention", "hard", "--encoder-from", str(root / "enc-w"), "--feature-pool", "12",
              "--pool-cache", str(root / "pool.safetensors"), "--reward", "to_go", "--reward-discount", "0.5",
              "--max-steps", "4", "--run-dir", str(root / "dec"), "--no-progress"]
    train.main([*common, "--steps-this-run", "2"])
    train.main(["--run-dir", str(root / "dec"), "--resume", "--export", str(root / "w"), "--no-progress"])
    return root


def test_export_loads_and_captions(stages):
    enc = stages / "enc-w" / pretrain.ENCODER_FILE
    assert enc.exists() and (stages / "enc-w" / pretrain.TAG_NET_FILE).exists()
    assert (stages / "pool.safetensors").exists()
    m = build_and_load(ShowAttendTell, stages / "w").eval()
    assert m.attention_kind == "hard"
    # the encoder stayed frozen: the exported encoder is the pretrained one
    saved = load_file(str(enc))
    for k, v in m.encoder.state_dict().items():
        assert torch.equal(v, saved[k]), k
    cap = m.caption(Image.new("RGB", (96, 96)), beam_size=2, max_len=5)
    assert cap.alphas.shape[1:] == m.grid_hw
    assert list(json.loads((stages / "w" / "config.json").read_text())["encoder_widths"]) == [4, 6, 8]


def test_init_from_exported_weights(stages, tmp_path):
    """--init-from (the scaffold's) starts a new run from an exported folder: with lr 0 nothing moves."""
    train.main([*TINY_DEC, "--attention", "hard", "--init-from", str(stages / "w"), "--lr", "0", "--max-steps", "1",
                "--run-dir", str(tmp_path / "run"), "--no-progress"])
    got = load_file(str(tmp_path / "run" / "checkpoint" / "model.safetensors"))
    want = load_file(str(stages / "w" / "model.safetensors"))
    assert got.keys() == want.keys()
    for k in want:
        assert torch.equal(got[k], want[k]), k


@pytest.mark.parametrize("part,layers", [("output", {"decoder.out_h", "decoder.out_z", "decoder.out_o"}),
                                         ("lstm-output", {"decoder.out_h", "decoder.out_z", "decoder.out_o",
                                                          "decoder.lstm"}),
                                         ("all-but-attention", {"decoder.out_h", "decoder.out_z", "decoder.out_o",
                                                                "decoder.lstm", "decoder.embed", "decoder.init_h.0",
                                                                "decoder.init_h.2", "decoder.init_c.0",
                                                                "decoder.init_c.2", "decoder.f_beta"})])
def test_train_only_moves_the_named_layers_alone(stages, tmp_path, part, layers):
    """--train-only: after a few steps at a high rate the named layers have moved and every other tensor (the
    attention MLP, gate, embedding, initial state, encoder; the LSTM too for 'output') is bit-for-bit the
    starting one."""
    train.main([*TINY_DEC, "--attention", "hard", "--init-from", str(stages / "w"), "--train-only", part,
                "--lr", "0.05", "--warmup-steps", "0", "--max-steps", "3", "--run-dir", str(tmp_path / "run"),
                "--no-progress", "--export", str(tmp_path / "w")])
    got = load_file(str(tmp_path / "w" / "model.safetensors"))
    want = load_file(str(stages / "w" / "model.safetensors"))
    moved = {k.rsplit(".", 1)[0] for k in want if not torch.equal(got[k], want[k])}
    assert moved == layers
    with pytest.raises(SystemExit, match="--init-from"):
        train.main([*TINY_DEC, "--train-only", part, "--max-steps", "1", "--run-dir", str(tmp_path / "r2"),
                    "--no-progress"])


def test_records_hold_what_a_model_card_needs(stages):
    """The scaffold's records of both stages: every invocation's command, steps, wall time, validation."""
    enc_info = json.loads((stages / "enc" / "train_info.json").read_text())
    assert enc_info["name"] == "sat-encoder" and enc_info["steps"] == 3 and enc_info["wall_time_s"] >= 0
    command = enc_info["segments"][0]["command"]
    assert command.startswith("python -m attn_models.captioning.pretrain ")
    assert "--encoder-widths 4 6 8" in command and "--flip" in command
    assert 0 <= enc_info["final_eval"]["val_class_acc"] <= 1 and 0 <= enc_info["final_eval"]["val_colour_acc"] <= 1
    assert (stages / "enc-w" / "train_info.json").exists()
    info = json.loads((stages / "dec" / "train_info.json").read_text())
    assert info["name"] == "sat-hard-fashion-scenes" and info["steps"] == 4
    assert [(s["from_step"], s["to_step"]) for s in info["segments"]] == [(0, 2), (2, 4)]
    first, resumed = (s["command"] for s in info["segments"])
    assert first.startswith("python -m attn_models.captioning.train ")
    assert "--reward to_go --reward-discount 0.5" in first
    assert "--resume" in resumed and all(s["hardware"] and s["wall_time_s"] >= 0 for s in info["segments"])
    assert set(info["final_eval"]) == {"val_recall", "val_att_correctness"}
    assert info["batch_size_per_process"] == 4 and info["epochs"] == round(4 * 4 / 12, 3)
    log = log_records(stages / "dec")
    losses = [r for r in log if "lr" in r]
    assert [r["step"] for r in losses] == [1, 2, 3, 4] and all("nll_per_word" in r and "baseline" in r for r in losses)
    assert [r["step"] for r in log if "eval" in r] == [2, 4]


def test_card_from_the_runs_records(stages, tmp_path):
    """The shared card writer reads both stages' records: the eval numbers and the exact commands reach the card."""
    from attn_models.cards import write_card

    metrics = {"bleu1": 0.5, "bleu2": 0.4, "bleu3": 0.3, "bleu4": 0.2, "object_recall": 0.123,
               "attention_correctness": 0.456, "uniform_baseline": 0.07, "exact_match": 0.01,
               "object_words": 10, "scenes": 5, "beam_size": 3}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    write_card("sat-hard-fashion-scenes", [stages / "enc", stages / "dec"], tmp_path / "m.json",
               out=stages / "w" / "README.md")
    card = (stages / "w" / "README.md").read_text()
    assert "| object recall | 0.123 |" in card and "--reward to_go --reward-discount 0.5" in card
    assert "python -m attn_models.captioning.pretrain " in card and (stages / "w" / "learning_curve.png").is_file()


# ---- photos: Karpathy's split JSON -----------------------------------------------------------------------
@pytest.fixture()
def karpathy_fixture(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    (root / "train2014").mkdir(parents=True)
    images = []
    for i, split in enumerate(["train", "train", "restval", "val", "test"]):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(root / "train2014" / name)
        images.append({"filepath": "train2014", "filename": name, "split": split, "imgid": i,
                       "sentences": [{"tokens": ["a", "dog", "runs"], "raw": "A dog runs."},
                                     {"tokens": ["A", "red", "dog"], "raw": "A red dog"}]})
    images.append({"filepath": "train2014", "filename": "img0.png", "split": "train", "sentences": []})
    path = tmp_path / "dataset_coco.json"
    path.write_text(json.dumps({"images": images, "dataset": "coco"}))
    return path, root


def test_karpathy_dataset(karpathy_fixture):
    path, root = karpathy_fixture
    ds = KarpathyCaptions(path, root, "train", image_size=32)
    assert len(ds) == 3  # train + restval, images without sentences skipped
    x, caps = ds[0]
    assert x.shape == (3, 32, 32) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert caps == [["a", "dog", "runs"], ["a", "red", "dog"]]  # lower-cased
    assert len(KarpathyCaptions(path, root, "val")) == 1 and len(KarpathyCaptions(path, root, "test")) == 1
    vocab = build_vocab(ds.captions(), min_count=2)
    assert vocab[:4] == list(SPECIALS) and set(vocab[4:]) == {"a", "dog", "red", "runs"}
    assert build_vocab(ds.captions(), min_count=4)[4:] == ["a", "dog"]
    with pytest.raises(ValueError):
        KarpathyCaptions(path, root, "bogus")
    bad = path.parent / "bad.json"
    bad.write_text("[]")
    with pytest.raises(ValueError):
        KarpathyCaptions(bad, root)


def test_train_on_karpathy_json(tmp_path, karpathy_fixture):
    path, root = karpathy_fixture
    info = train.main(["--data", "karpathy", "--karpathy-json", str(path), "--image-root", str(root),
                       "--image-size", "32", "--min-count", "1", "--run-dir", str(tmp_path / "run"),
                       "--max-steps", "3", "--export", str(tmp_path / "w"), "--no-progress", *TINY_DEC])
    assert info["name"] == "sat-soft-karpathy" and info["steps"] == 3 and info["epochs"] == 4.0  # 3 x 4 / 3 images
    m = ShowAttendTell.from_pretrained(tmp_path / "w").eval()
    assert "dog" in m.vocab and m.grid_hw == (4, 4)
    assert m.caption(Image.open(root / "train2014" / "img0.png"), max_len=4).alphas.shape[1:] == (4, 4)


def test_every_item_canvases_hold_each_item_once_with_its_label():
    images = np.stack([np.full((28, 28), 10 * (i + 1), np.uint8) for i in range(5)])
    labels = np.array([3, 1, 4, 1, 5])
    x, _, cls = pretrain.item_canvases(np.random.default_rng(0), images, labels, 99, 32, every_item=True)
    assert x.shape[0] == 5 and cls.tolist() == labels.tolist()
    # each canvas holds its own item: the brightest channel's maximum is that item's grey level, tinted
    assert torch.unique(x.flatten(1).amax(1)).numel() > 1


def test_encoder_evaluation_reports_test_and_validation_accuracy(stages, tmp_path):
    from attn_models.captioning import evaluate_encoder

    out = evaluate_encoder.main([str(stages / "enc-w"), "--limit", "40", "--scenes", "0",
                                 "--json", str(tmp_path / "e.json")])
    assert not any("scene" in k for k in out)  # --scenes 0: single items only
    assert out["test_items"] == 40 and 0 <= out["test_class_acc"] <= 1 and 0 <= out["val_class_acc"] <= 1
    assert json.loads((tmp_path / "e.json").read_text())["test_class_acc"] == out["test_class_acc"]
    # a tag net that always answers class 3 scores the share of 3s among the test items' labels
    net, config = evaluate_encoder.load_tag_net(stages / "enc-w")
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.bias[len(COLOURS) + int(net.background) + 3] = 1.0  # class logits follow the colour ones
    always3 = evaluate_encoder.test_item_metrics(net, config["pretrain_canvas"], 0, 40)
    _, labels = load_fashion_mnist("test")
    assert always3["test_class_acc"] == pytest.approx(float(np.mean(labels[:40] == 3)))
    with pytest.raises(SystemExit, match="not a pretrain export"):
        evaluate_encoder.main([str(tmp_path)])


def test_encoder_evaluation_reads_the_tag_head_inside_each_scene_items_box(stages, tmp_path):
    from attn_models.captioning import evaluate_encoder
    from attn_models.data.scenes import fixed_test_set

    out = evaluate_encoder.main([str(stages / "enc-w"), "--limit", "20", "--scenes", "6"])
    assert out["test_scenes"] == out["val_scenes"] == 6 and out["test_scene_items"] >= 6
    assert 0 <= out["test_scene_item_acc"] <= min(out["test_scene_class_acc"], out["test_scene_colour_acc"])
    scenes = fixed_test_set(6)
    net, _ = evaluate_encoder.load_tag_net(stages / "enc-w")
    g = 12  # the encoder's grid on a 96 px scene (stride 8)
    # a head whose class evidence is the item's own label in the cells whose centre lies in its box (cell i's
    # centre at 8i + 4 px), class 0 elsewhere, scores 1
    truth = torch.zeros(len(scenes), g, g, dtype=torch.long)
    centres = torch.arange(g) * 8 + 4
    for b, scene in enumerate(scenes):
        for item in scene.items:
            y0, x0, y1, x1 = item.box
            inside = ((centres >= y0) & (centres < y1))[:, None] & ((centres >= x0) & (centres < x1))[None]
            truth[b][inside] = item.label
    n_col = len(COLOURS) + int(net.background)

    def oracle(x, per_cell=False):
        cls = torch.nn.functional.one_hot(truth[:len(x)], 10 + int(net.background)).permute(0, 3, 1, 2)
        return torch.zeros(len(x), n_col, g, g), cls.float()

    net.forward = oracle
    m = evaluate_encoder.scene_item_metrics(net, scenes, "test")
    assert m["test_scene_class_acc"] == 1.0
    assert m["test_scene_colour_acc"] == pytest.approx(np.mean([it.colour == COLOURS[0] for s in scenes
                                                                for it in s.items]))


def test_flip_averaged_tag_net_reads_both_views(stages, tmp_path):
    """--flip-average: per-cell logits are the mean over the canvas and its mirror (mirrored back), so mirroring the
    canvas mirrors them exactly; the max-pooled logits are taken over that mean."""
    from attn_models.captioning import evaluate_encoder

    net, _ = evaluate_encoder.load_tag_net(stages / "enc-w")
    both = evaluate_encoder.flip_averaged(net)
    x = torch.rand(3, 3, 96, 96)
    with torch.no_grad():
        plain, mirrored = net(x, per_cell=True), net(x.flip(-1), per_cell=True)
        averaged = both(x, per_cell=True)
        for a, p, m in zip(averaged, plain, mirrored, strict=True):
            torch.testing.assert_close(a, (p + m.flip(-1)) / 2)
        for a, f in zip(averaged, both(x.flip(-1), per_cell=True), strict=True):
            torch.testing.assert_close(f, a.flip(-1))
        col, cls = both(x)
        torch.testing.assert_close(cls, averaged[1][:, :10].amax(dim=(2, 3)))
    out = evaluate_encoder.main([str(stages / "enc-w"), "--limit", "20", "--scenes", "4", "--flip-average",
                                 "--held-out-items"])
    assert out["flip_average"] and out["val_scenes_held_out_items"] and out["val_scenes"] == 4


def test_caption_metrics_carry_their_encoders_item_accuracy_only_for_that_encoder(stages, tmp_path):
    from attn_models.captioning import evaluate, evaluate_encoder

    evaluate_encoder.main([str(stages / "enc-w"), "--limit", "20", "--scenes", "3",
                           "--json", str(tmp_path / "enc.json")])
    evaluate.main([str(stages / "w"), "--limit", "1", "--beam-size", "1", "--max-len", "3",
                   "--encoder-eval", str(tmp_path / "enc.json"), "--json", str(tmp_path / "m.json")])
    m = json.loads((tmp_path / "m.json").read_text())
    enc = json.loads((tmp_path / "enc.json").read_text())
    assert m["encoder_test_class_acc"] == enc["test_class_acc"] and m["encoder_test_items"] == 20
    assert m["encoder_test_scene_item_acc"] == enc["test_scene_item_acc"]
    # another encoder (the same shape, other weights) is refused
    pretrain.main([*TINY_ENC, "--max-steps", "1", "--seed", "5", "--no-progress", "--run-dir", str(tmp_path / "e"),
                   "--export", str(tmp_path / "other")])
    evaluate_encoder.main([str(tmp_path / "other"), "--limit", "20", "--scenes", "0",
                           "--json", str(tmp_path / "other.json")])
    with pytest.raises(SystemExit, match="another encoder"):
        evaluate.main([str(stages / "w"), "--limit", "1", "--beam-size", "1", "--max-len", "3",
                       "--encoder-eval", str(tmp_path / "other.json")])
    # the export gone, a later evaluation of the same weights carries those numbers, checked by the encoder's sha256
    evaluate.main([str(stages / "w"), "--limit", "1", "--beam-size", "1", "--max-len", "3",
                   "--encoder-numbers-from", str(tmp_path / "m.json"), "--json", str(tmp_path / "again.json")])
    again = json.loads((tmp_path / "again.json").read_text())
    assert {k: again[k] for k in m if k.startswith("encoder_")} == {k: m[k] for k in m if k.startswith("encoder_")}
    assert again["encoder_numbers_from"] == str(tmp_path / "m.json")
    other = json.loads((tmp_path / "m.json").read_text()) | {"encoder_sha256": "0" * 64}
    (tmp_path / "other-m.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="another encoder"):
        evaluate.main([str(stages / "w"), "--limit", "1", "--encoder-numbers-from", str(tmp_path / "other-m.json")])
    with pytest.raises(SystemExit, match="no encoder_"):
        evaluate.main([str(stages / "w"), "--limit", "1", "--encoder-numbers-from", str(tmp_path / "enc.json")])
