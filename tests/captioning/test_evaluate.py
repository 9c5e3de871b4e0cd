"""The evaluation entry: a weights folder in, the metrics JSON (the keys of the shipped metrics.json) out."""
import json

import numpy as np
import pytest
import torch

from attn_models.captioning import evaluate
from attn_models.captioning.model import ShowAttendTell
from attn_models.data.scenes import CLASS_WORDS

KEYS = ["bleu1", "bleu2", "bleu3", "bleu4", "object_recall", "items_confused", "items_omitted",
        "attention_correctness", "uniform_baseline", "item_cells_baseline",
        "object_words", "scenes", "beam_size", "exact_match", "model", "attention", "split", "seconds", "command"]


def test_evaluate_writes_the_metrics_json(tmp_path, fashion_mnist):
    torch.manual_seed(0)
    ShowAttendTell(attention="hard", encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    evaluate.main([str(tmp_path / "w"), "--limit", "3", "--beam-size", "2", "--max-len", "4",
                   "--json", str(tmp_path / "m.json"), "--figure", str(tmp_path / "f.png"), "--figure-scenes", "1"])
    metrics = json.loads((tmp_path / "m.json").read_text())
    hard_keys = KEYS[:KEYS.index("split") + 1] + ["hard_context"] + KEYS[KEYS.index("split") + 1:]
    assert list(metrics) == hard_keys and metrics["scenes"] == 3 and metrics["attention"] == "hard"
    assert metrics["hard_context"] == "argmax"  # the model's config (the default)
    assert metrics["split"] == "test"
    assert metrics["command"].startswith("python -m attn_models.captioning.evaluate ")
    assert "--limit 3" in metrics["command"]
    assert all(0 <= metrics[k] <= 1 for k in KEYS[:4]) and (tmp_path / "f.png").stat().st_size > 0
    # every item is named, named with the wrong class, or not named
    assert metrics["object_recall"] + metrics["items_confused"] + metrics["items_omitted"] == pytest.approx(1.0)


def test_hard_context_flag_decodes_with_the_other_context_and_says_so(tmp_path, fashion_mnist, monkeypatch):
    """--hard-context overrides the config's test-time context of a hard model (to choose it on validation); the
    JSON records the one used; a soft model refuses it."""
    torch.manual_seed(0)
    tiny = dict(encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16, attn_dim=8)
    ShowAttendTell(attention="hard", hard_context="argmax", **tiny).eval().save_pretrained(tmp_path / "w")
    modes = []
    real = evaluate.evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda model, scenes, *a, **k: modes.append(model.test_mode) or real(
        model, scenes, *a, **k))
    for flag in ([], ["--hard-context", "expect"]):
        evaluate.main([str(tmp_path / "w"), "--limit", "2", "--beam-size", "1", "--max-len", "3",
                       "--json", str(tmp_path / "m.json"), *flag])
        assert json.loads((tmp_path / "m.json").read_text())["hard_context"] == (flag[-1] if flag else "argmax")
    assert modes == ["argmax", "expect"]
    ShowAttendTell(attention="soft", **tiny).eval().save_pretrained(tmp_path / "soft")
    with pytest.raises(SystemExit):
        evaluate.main([str(tmp_path / "soft"), "--limit", "1", "--hard-context", "expect"])
    evaluate.main([str(tmp_path / "soft"), "--limit", "1", "--max-len", "3", "--json", str(tmp_path / "s.json")])
    assert "hard_context" not in json.loads((tmp_path / "s.json").read_text())


def test_flip_average_flag_decodes_from_both_views_and_says_so(tmp_path, fashion_mnist, monkeypatch):
    torch.manual_seed(0)
    ShowAttendTell(attention="soft", encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    seen = []
    real = evaluate.evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda model, scenes, *a, **k: seen.append(
        model.encoder_flip_average) or real(model, scenes, *a, **k))
    for flag in ([], ["--encoder-flip-average"]):
        evaluate.main([str(tmp_path / "w"), "--limit", "2", "--beam-size", "1", "--max-len", "3",
                       "--json", str(tmp_path / "m.json"), *flag])
        assert json.loads((tmp_path / "m.json").read_text()).get("encoder_flip_average") == (True if flag else None)
    assert seen == [False, True]


def test_validation_flag_scores_the_training_scripts_validation_scenes(tmp_path, fashion_mnist, monkeypatch):
    """--validation: the scenes the decoder's training validates on (training images), never the test set."""
    from attn_models.captioning.train import VAL_SEED
    from attn_models.data.scenes import fashion_scenes, fixed_test_set

    ShowAttendTell(encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    seen = []
    real = evaluate.evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda model, scenes, *a, **k: seen.append(scenes) or real(
        model, scenes, *a, **k))
    evaluate.main([str(tmp_path / "w"), "--validation", "--limit", "2", "--beam-size", "1", "--max-len", "3",
                   "--json", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["split"] == "validation"
    want = fashion_scenes("train", 2, VAL_SEED)
    assert [s.captions for s in seen[0]] == [s.captions for s in want]
    assert (seen[0][0].image == want[0].image).all() and not (seen[0][0].image == fixed_test_set(1)[0].image).all()


def test_held_out_items_are_the_items_the_encoders_pretraining_never_trained_on(tmp_path, fashion_mnist,
                                                                                  monkeypatch):
    """--validation --held-out-items: scenes whose every item is one of pretrain's held-out training items."""
    from attn_models.captioning.pretrain import split_items
    from attn_models.data.scenes import ITEM, PALETTE

    images = fashion_mnist[0]
    trained, held_out = split_items(len(images))
    assert len(held_out) == 5000 and not set(trained) & set(held_out) and len(trained) + 5000 == len(images)
    ShowAttendTell(encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    seen = []
    real = evaluate.evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda model, scenes, *a, **k: seen.append(scenes) or real(
        model, scenes, *a, **k))
    evaluate.main([str(tmp_path / "w"), "--validation", "--held-out-items", "--limit", "4", "--beam-size", "1",
                   "--max-len", "3", "--json", str(tmp_path / "m.json")])
    assert json.loads((tmp_path / "m.json").read_text())["split"] == "validation, held-out items"
    held = images[held_out].astype(np.float32)
    for scene in seen[0]:
        for it in scene.items:  # the tinted pixels come from a held-out image (the brightest channel, untinted)
            y0, x0 = it.box[:2]
            patch = scene.image[y0:y0 + ITEM, x0:x0 + ITEM].astype(np.float32)
            ch = int(np.argmax(PALETTE[it.colour]))
            untinted = patch[:, :, ch] * 255.0 / PALETTE[it.colour][ch]
            assert np.abs(held - untinted).reshape(len(held), -1).max(1).min() <= 1.5
    with pytest.raises(SystemExit):
        evaluate.main([str(tmp_path / "w"), "--held-out-items", "--limit", "1"])


def test_a_validation_draw_may_be_larger_than_the_test_set(tmp_path, fashion_mnist, monkeypatch):
    """--limit stops at the test set's 2,000 scenes for the test set, at VALIDATION_LIMIT for validation draws, whose
    first n scenes are the same whatever the limit (so a 5,000-scene draw holds the 2,000-scene one)."""
    from attn_models.data.scenes import TEST_SIZE

    ShowAttendTell(encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    asked = []
    monkeypatch.setattr(evaluate, "validation_scenes", lambda n, held_out: asked.append((n, held_out)) or [])
    monkeypatch.setattr(evaluate, "evaluate", lambda model, scenes, *a, **k: {"scenes": len(scenes)})
    evaluate.main([str(tmp_path / "w"), "--validation", "--held-out-items", "--limit", str(TEST_SIZE + 1)])
    assert asked == [(TEST_SIZE + 1, True)]
    for too_many in (["--limit", str(TEST_SIZE + 1)], ["--validation", "--limit", str(evaluate.VALIDATION_LIMIT + 1)],
                     ["--validation", "--limit", "0"]):
        with pytest.raises(SystemExit):
            evaluate.main([str(tmp_path / "w"), *too_many])
    from attn_models.captioning.train import validation_scenes

    assert [s.captions for s in validation_scenes(3)] == [s.captions for s in validation_scenes(5)[:3]]


FAITH_KEYS = ["faithfulness_" + k for k in (
    "drop_attended", "drop_attended_std", "drop_random", "drop_random_std", "drop_difference", "drop_difference_std",
    "attended_beats_random", "rank_correlation", "rank_correlation_std", "words", "words_with_rank_correlation",
    "draws", "seed", "seconds")]


def test_faithfulness_flag_adds_its_keys(tmp_path, fashion_mnist):
    """--faithfulness: the tests over every colour and class word of the captions; the same numbers as the library's
    per-scene function with seed + scene index."""
    from PIL import Image

    from attn_models.captioning import faithfulness as fa
    from attn_models.data.scenes import fixed_test_set

    torch.manual_seed(0)
    model = ShowAttendTell(attention="soft", encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                           attn_dim=8).eval()
    with torch.no_grad():  # a caption that names things: "red bag" is likely from the first step on
        model.decoder.out_o.bias[model.word_to_id["red"]] += 6.0
    model.save_pretrained(tmp_path / "w")
    evaluate.main([str(tmp_path / "w"), "--limit", "2", "--beam-size", "1", "--max-len", "3", "--faithfulness",
                   "--faithfulness-draws", "2", "--faithfulness-seed", "4", "--json", str(tmp_path / "m.json")])
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert list(metrics) == KEYS[:14] + FAITH_KEYS + KEYS[14:]
    assert metrics["faithfulness_draws"] == 2 and metrics["faithfulness_seed"] == 4
    tests = []
    for i, scene in enumerate(fixed_test_set(2)):
        image = Image.fromarray(scene.image)
        words = model.caption(image, beam_size=1, max_len=3).words
        tests += fa.faithfulness(model, image, words, draws=2, seed=4 + i).tests
    assert metrics["faithfulness_words"] == len(tests) > 0
    expected = fa.summary(tests)
    for key in ("drop_attended", "drop_random", "rank_correlation"):
        assert abs(metrics[f"faithfulness_{key}"] - expected[key]) < 1e-5, key


def test_confusion_numbers_split_the_class_words_by_right_and_wrong():
    rows = [("shirt", "shirt", 0.9), ("shirt", "tshirt", 0.8), ("coat", "pullover", 0.2), ("shirt", "tshirt", 0.6)]
    out = evaluate.confusion_numbers(rows)
    assert out["class_words_right"] == 1 and out["class_words_wrong"] == 3
    assert out["class_words_right_box_mass"] == pytest.approx(0.9)
    assert out["class_words_wrong_box_mass"] == pytest.approx((0.8 + 0.2 + 0.6) / 3)
    assert out["class_words_wrong_mostly_off_item"] == pytest.approx(1 / 3)
    assert out["confusions_within_upper_body"] == pytest.approx(1.0)
    assert evaluate.UPPER_BODY <= set(CLASS_WORDS)  # spelt as the captions spell the classes
    assert evaluate.confusion_numbers([("bag", "shirt", 0.5), ("coat", "shirt", 0.5)])[
        "confusions_within_upper_body"] == pytest.approx(0.5)
    assert list(out["confusions"].items()) == [("shirt -> tshirt", 2), ("coat -> pullover", 1)]
    assert np.isnan(evaluate.confusion_numbers([])["class_words_wrong_box_mass"])


def test_confusions_flag_adds_its_keys_from_the_captions(tmp_path, fashion_mnist, monkeypatch):
    """--confusions: the class words of the very captions scored, counted right and wrong as object recall counts
    the items (a wrong class after an item's colour is what makes it confused). The captions are fixed here: the
    first names its scene's first item rightly, the others name theirs a bag."""
    from attn_models.captioning.metrics import attention_correctness
    from attn_models.captioning.model import Caption
    from attn_models.data.scenes import fixed_test_set

    torch.manual_seed(0)
    ShowAttendTell(attention="soft", encoder_channels=8, encoder_widths=(4, 6, 8), embed_dim=8, hidden_dim=16,
                   attn_dim=8).eval().save_pretrained(tmp_path / "w")
    args = [str(tmp_path / "w"), "--limit", "3", "--beam-size", "1", "--max-len", "4"]
    evaluate.main(args + ["--json", str(tmp_path / "plain.json")])
    assert "confusions" not in json.loads((tmp_path / "plain.json").read_text())  # off by default

    scenes = fixed_test_set(3)
    alphas = np.full((2, 12, 12), 1 / 144)  # the class word's map uniform, the colour word's on the top-left cell
    alphas[0] = 0.0
    alphas[0, 0, 0] = 1.0
    captions = [[scenes[0].items[0].colour, scenes[0].items[0].words[1]]]
    captions += [[s.items[0].colour, "bag"] for s in scenes[1:]]
    calls = iter(captions)
    monkeypatch.setattr(ShowAttendTell, "caption_annotations",
                        lambda self, annotations, beam_size=3, max_len=20: Caption(next(calls), alphas, None))
    evaluate.main(args + ["--confusions", "--json", str(tmp_path / "m.json")])
    metrics = json.loads((tmp_path / "m.json").read_text())
    right = [s.items[0].words[1] == c[1] for s, c in zip(scenes, captions, strict=True)]
    assert right[0] and metrics["class_words_right"] == sum(right) and metrics["class_words_wrong"] == 3 - sum(right)
    wrong = [f"{s.items[0].words[1]} -> bag" for s, r in zip(scenes, right, strict=True) if not r]
    assert sum(metrics["confusions"].values()) == len(wrong) and set(metrics["confusions"]) == set(wrong)
    assert metrics["items_confused"] == pytest.approx(len(wrong) / sum(len(s.items) for s in scenes))
    assert list(metrics)[:14] == KEYS[:14]
    # correctness over the named items' colour words and class words apart
    named = [attention_correctness(alphas, c, s) for s, c, r in zip(scenes, captions, right, strict=True) if r]
    assert metrics["attention_correctness_colour_words"] == pytest.approx(np.mean([n[0] for n in named]))
    assert metrics["attention_correctness_class_words"] == pytest.approx(np.mean([n[1] for n in named]))
    assert metrics["class_words_right_box_mass"] == pytest.approx(np.mean([n[1] for n in named]))
