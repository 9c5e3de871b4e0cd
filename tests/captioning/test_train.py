"""The training script end to end on tiny settings, and the Karpathy-JSON captions dataset."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from attn_models.captioning.model import ShowAttendTell
from attn_models.data.captions import SPECIALS, KarpathyCaptions, build_vocab
from attn_models.captioning import train

TINY = ["--encoder-channels", "8", "--embed-dim", "8", "--hidden-dim", "16", "--attn-dim", "8",
        "--batch-size", "4", "--threads", "1", "--eval-every", "1000", "--eval-scenes", "3", "--eval-items", "20"]



def log_records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_encoder_then_decoder_resume_and_export(tmp_path, fashion_mnist):
    ck = str(tmp_path / "ck")
    train.main(["--stage", "encoder", "--name", "enc", "--checkpoint-dir", ck, "--steps", "3",
                "--pretrain-canvas", "32", "--encoder-widths", "4", "6", "8", "--flip", "--weight-decay", "0.01",
                *TINY])
    enc = tmp_path / "ck" / "enc" / "encoder.safetensors"
    assert enc.exists()
    common = ["--attention", "hard", "--name", "dec", "--checkpoint-dir", ck, "--encoder-from", str(enc),
              "--feature-pool", "12", "--pool-cache", str(tmp_path / "pool.safetensors"),
              "--encoder-widths", "4", "6", "8", "--reward", "to_go", "--reward-discount", "0.5", *TINY]
    train.main([*common, "--steps", "2"])
    assert (tmp_path / "pool.safetensors").exists()
    train.main([*common, "--steps", "4", "--resume", "--export", str(tmp_path / "w")])
    info = json.loads((tmp_path / "ck" / "dec" / "train_info.json").read_text())
    assert info["steps"] == 4  # resumed at 2, not restarted
    m = ShowAttendTell.from_pretrained(tmp_path / "w").eval()
    assert m.attention_kind == "hard"
    # the encoder stayed frozen: the exported encoder is the pretrained one
    saved = load_file(str(enc))
    for k, v in m.encoder.state_dict().items():
        assert torch.equal(v, saved[k]), k
    cap = m.caption(Image.new("RGB", (96, 96)), beam_size=2, max_len=5)
    assert cap.alphas.shape[1:] == m.grid_hw
    assert list(json.loads((tmp_path / "w" / "config.json").read_text())["encoder_widths"]) == [4, 6, 8]

    # the model card is written from these runs' logs and an eval JSON, nothing typed by hand
    from attn_models.captioning.card import main as card_main

    metrics = {"bleu1": 0.5, "bleu2": 0.4, "bleu3": 0.3, "bleu4": 0.2, "object_recall": 0.123,
               "attention_correctness": 0.456, "uniform_baseline": 0.07, "exact_match": 0.01,
               "object_words": 10, "scenes": 5, "beam_size": 3}
    (tmp_path / "m.json").write_text(json.dumps(metrics))
    card_main([str(tmp_path / "w"), "--metrics", str(tmp_path / "m.json"), "--train-info",
               str(tmp_path / "ck" / "dec" / "train_info.json"), "--encoder-log",
               str(tmp_path / "ck" / "enc" / "log.jsonl"), "--encoder-log", str(tmp_path / "ck" / "enc" / "log.jsonl"),
               "--hardware", "on a test machine"])
    card = (tmp_path / "w" / "README.md").read_text()
    assert "| object recall | 0.123 |" in card and "| attention correctness | 0.456 |" in card
    assert "--reward to_go --reward-discount 0.5" in card and "--encoder-widths 4 6 8 --flip" in card
    assert "block widths [4, 6, 8]" in card and "on a test machine" in card
    assert card.count("--stage encoder") == 2 and "items (reported, not used for selection), then:" in card


def test_cell_targets_label_the_cells_whose_centre_is_in_the_box():
    # a 28x28 item at (y, x) = (0, 12) on a 40x40 canvas: cell centres 4, 12, 20, 28, 36
    t = train.cell_targets(torch.tensor([[0, 12]]), torch.tensor([3]), background=10, grid=5)[0]
    expect = torch.full((5, 5), 10)
    expect[0:3, 1:5] = 3  # rows with centre 4..20 (< 28), columns with centre 12..36 (>= 12)
    assert torch.equal(t, expect)


def test_per_cell_tag_pretraining_learns_where_the_item_is(tmp_path, fashion_mnist):
    """The 'cells' loss starts from given encoder weights and trains the background logits: a short run
    tells item cells from background cells far better than the majority guess (tiny net, few steps)."""
    ck = str(tmp_path / "ck")
    train.main(["--stage", "encoder", "--name", "e1", "--checkpoint-dir", ck, "--steps", "2", *TINY])
    enc = tmp_path / "ck" / "e1" / "encoder.safetensors"
    train.main(["--stage", "encoder", "--name", "e2", "--checkpoint-dir", ck, "--steps", "150", "--lr", "1e-2",
                "--tag-loss", "cells", "--encoder-init", str(enc), *TINY, "--batch-size", "16"])
    st = train.load_state(tmp_path / "ck" / "e2" / "state.pt")
    net = train.TagNet(8, background=True)
    net.load_state_dict(st["model"])
    net.eval()
    images, labels = fashion_mnist[2], fashion_mnist[3]  # test items
    x, _, cls, offs = train.item_canvases(np.random.default_rng(5), images, labels, 64, 40, with_offsets=True)
    with torch.no_grad():
        col_cells, cls_cells = net(x, per_cell=True)
    assert col_cells.shape == (64, 9, 5, 5) and cls_cells.shape == (64, 11, 5, 5)
    is_bg = train.cell_targets(offs, cls, 10, 5) == 10
    predicted_bg = cls_cells.argmax(1) == 10
    majority = max(float(is_bg.float().mean()), 1 - float(is_bg.float().mean()))
    acc = float((predicted_bg == is_bg).float().mean())
    assert acc > max(0.85, majority + 0.1)


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
    train.main(["--data", "karpathy", "--karpathy-json", str(path), "--image-root", str(root),
                "--image-size", "32", "--min-count", "1", "--name", "k", "--checkpoint-dir", str(tmp_path / "ck"),
                "--steps", "3", "--export", str(tmp_path / "w"), *TINY])
    m = ShowAttendTell.from_pretrained(tmp_path / "w").eval()
    assert "dog" in m.vocab and m.grid_hw == (4, 4)
    assert m.caption(Image.open(root / "train2014" / "img0.png"), max_len=4).alphas.shape[1:] == (4, 4)
