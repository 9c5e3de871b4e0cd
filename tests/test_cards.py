"""The one model-card writer (attn_models.cards): every number in a card comes from the run's records and the
evaluate JSONs that the fixture writes here, and a missing or garbled input is an error naming the file."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from attn_models import cards

ROOT = Path(__file__).resolve().parent.parent
CPU = "CPU x86_64, 2 cores, 1 torch thread(s) per process"
GPU = "NVIDIA H200 (CUDA)"
BATCH = 8


def segment(module: str, flags: str, hardware: str, from_step: int, to_step: int, wall_s: float, started: str):
    return {"command": f"python -m {module} {flags}", "num_processes": 1,
            "device": "cuda" if "CUDA" in hardware else "cpu", "hardware": hardware, "from_step": from_step,
            "to_step": to_step, "wall_time_s": wall_s, "started": started}


def write_run(folder: Path, name: str, module: str, loss_key: str, eval_key: str, start: float = 1.0) -> dict:
    """A finished run as the scaffold leaves it: CPU 0->200, a lost invocation (killed at step 250 before its
    first checkpoint), GPU 200->400, CPU again 400->500. Losses every 50 steps, validation every 100."""
    segs = [segment(module, f"--run-dir {folder} --max-steps 500 --seed 3", CPU, 0, 200, 1234.5, "2026-01-01 10:00"),
            segment(module, f"--run-dir {folder} --resume --device cuda", GPU, 200, 400, 95.0, "2026-01-02 09:00"),
            segment(module, f"--run-dir {folder} --resume --device cpu --export w", CPU, 400, 500, 700.2,
                    "2026-01-03 08:00")]
    lost = segment(module, f"--run-dir {folder} --resume --time-budget-min 1", CPU, 200, 250, 60.0, "x")
    log = []
    for seg in (segs[0], lost, *segs[1:]):
        log.append({"event": "start", **{k: v for k, v in seg.items() if k not in ("to_step", "wall_time_s")}})
        for step in range(seg["from_step"] + 50, seg["to_step"] + 1, 50):
            # the lost invocation logs a loss of 99 that must not survive the resume
            value = 99.0 if seg is lost else round(start / (1 + step / 100), 6)
            log.append({"step": step, "lr": 1e-3, "elapsed_s": float(step), loss_key: value})
            if step % 100 == 0:
                log.append({"step": step, "elapsed_s": float(step), "eval": {eval_key: round(start / step, 6)}})
    log.append({"event": "end", "step": 500, "elapsed_s": 2029.7, "exported": "w"})
    info = {"name": name, "steps": 500, "max_steps": 500, "epochs": round(500 * BATCH / 1000, 3),
            "batch_size_per_process": BATCH, "wall_time_s": sum(s["wall_time_s"] for s in segs), "segments": segs,
            "versions": {"python": "3.11.2", "torch": "2.4.0"}, "final_eval": {eval_key: start / 500},
            # the last invocation's flags, as the scaffold records them: the run's, and that invocation's own
            "args": {"max_steps": 500, "seed": 3, "batch_size": BATCH, "resume": True, "device": "cpu",
                     "export": "w", "threads": 1}}
    folder.mkdir(parents=True)
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (folder / "train_info.json").write_text(json.dumps(info, indent=1))
    return info


def weights_folder(tmp_path: Path, name: str, pictures=("samples.png",)) -> Path:
    out = tmp_path / "weights" / name
    out.mkdir(parents=True)
    shutil.copy(ROOT / "weights" / name / "config.json", out / "config.json")
    for pic in pictures:
        Image.new("RGB", (4, 4)).save(out / pic)
    return out


def write_json(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data, indent=1))
    return path


def row(card: str, label: str) -> list[str]:
    """The cells of the table row labelled ``label``."""
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in the card")


def check_training_records(card: str, infos: list[dict]) -> None:
    """Every command in order; per-machine sums of steps and wall time."""
    commands = [s["command"] for info in infos for s in info["segments"]]
    positions = [card.index(c) for c in commands]
    assert positions == sorted(positions)
    sections = card.split("## Training", 1)[1].split("\n### ")[1:]  # one per run, in order
    assert len(sections) == len(infos)
    for section, info in zip(sections, infos, strict=True):
        check_machines(section, [info])
        assert f"{info['steps']:,} steps of {info['max_steps']:,}" in section


def check_machines(text: str, infos: list[dict]) -> None:
    """The first per-machine table of ``text`` sums the fixture's segments by hardware."""
    for label in (CPU, GPU):
        segs = [s for info in infos for s in info["segments"] if s["hardware"] == label]
        steps = sum(s["to_step"] - s["from_step"] for s in segs)
        cells = row(text, label)
        assert cells[0] == f"{steps:,}"
        assert cells[2] == f"{steps * BATCH:,}"
        assert cells[3] == f"{sum(s['wall_time_s'] for s in segs) / 60:.1f} min"


def check_card_files(out: Path) -> str:
    card = out.read_text()
    png = out.parent / cards.CURVE
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()
    assert f"]({cards.CURVE})" in card and "](samples.png)" in card
    assert "DESIGN.md" not in card
    for path in set(re.findall(r"attn_models/[\w/]+\.py", card)):  # never a file the repository lacks
        assert (ROOT / path).is_file(), path
    for f in ("config.json", "train_info.json", "log.jsonl"):
        assert f in card.split("## Provenance")[1]
    return card


def test_image_transformer_card(tmp_path):
    name = "image-transformer-2d-fashion-mnist"
    info = write_run(tmp_path / "runs" / "it", name, "attn_models.image_transformer.train", "bpd", "val_bpd")
    new = {"model": name, "test_images": 10000, "bits_per_dim": 3.0123, "marginal_baseline_bits_per_dim": 4.5,
           "eval_seconds": 600.0,
           "command": f"python -m attn_models.image_transformer.evaluate {name} --json {tmp_path}/eval.json"}
    old = json.loads((ROOT / "weights" / name / "eval.json").read_text())  # the shipped file's shape
    out = weights_folder(tmp_path, name) / "README.md"
    cards.main([name, "--run", str(tmp_path / "runs" / "it"), "--eval", str(write_json(tmp_path / "eval.json", new)),
                "--previous", str(ROOT / "weights" / name / "eval.json"), "--previous-label", "v1",
                "--out", str(out)])
    card = check_card_files(out)
    check_training_records(card, [info])
    cells = row(card, "bits/dim")
    assert cells[:3] == [f"{new['bits_per_dim']:.3f}", f"{old['bits_per_dim']:.3f}",
                         f"{new['bits_per_dim'] - old['bits_per_dim']:+.3f}"]
    assert cells[-1] == f"≤ 3: **{'met' if new['bits_per_dim'] <= 3.0 else 'not met'}**"
    assert "| metric | this model | v1 | change |" in card
    assert row(card, "test images")[0] == f"{new['test_images']:,}"
    assert new["command"] in card and f"Evaluation wall time: {new['eval_seconds'] / 60:.1f} min." in card
    assert "local 2D" in card and "## Use" in card and f'load("{name}")' in card
    # the lost invocation: counted once, its records dropped
    assert "1 more invocation(s)" in card and "bpd 99" not in card


def older_captioning_json(name: str) -> dict:
    """The shipped metrics.json as an evaluate run without --faithfulness, --encoder-eval and its command line wrote
    it."""
    shipped = json.loads((ROOT / "weights" / name / "metrics.json").read_text())
    return {k: v for k, v in shipped.items() if not k.startswith(("faithfulness_", "encoder_")) and k != "command"}


def test_captioning_chain_card(tmp_path):
    name = "sat-soft-fashion-scenes"
    enc = write_run(tmp_path / "runs" / "enc", "sat-encoder", "attn_models.captioning.pretrain", "loss",
                    "val_class_acc")
    dec = write_run(tmp_path / "runs" / "dec", name, "attn_models.captioning.train", "nll_per_word", "val_recall",
                    start=2.0)
    shipped = older_captioning_json(name)
    new = {**shipped, "bleu4": 0.7654, "object_recall": 0.8521, "attention_correctness": 0.7312,
           "object_words": 8123, "model": "runs/dec/export", "encoder_test_class_acc": 0.9371,
           "encoder_test_scene_item_acc": 0.9381}
    out = weights_folder(tmp_path, name, ("attention.png", "samples.png")) / "README.md"
    cards.write_card(name, [tmp_path / "runs" / "enc", tmp_path / "runs" / "dec"],
                     write_json(tmp_path / "m.json", new), previous=write_json(tmp_path / "old.json", shipped),
                     out=out)
    card = check_card_files(out)
    check_training_records(card, [enc, dec])
    assert "### Stage 1: `attn_models.captioning.pretrain` (sat-encoder)" in card
    assert "### Stage 2: `attn_models.captioning.train`" in card
    for label, key, fmt in (("BLEU-4", "bleu4", "{:.3f}"), ("object recall", "object_recall", "{:.3f}"),
                            ("object words scored", "object_words", "{:,}")):
        assert row(card, label)[:2] == [fmt.format(new[key]), fmt.format(shipped[key])]
    assert row(card, "object recall")[-1] == "≥ 0.93: **not met**"
    assert row(card, "attention correctness")[-1] == "≥ 0.78: **not met**"  # 0.7312, the soft model's bar
    # evaluate --encoder-eval's row: the shipped JSON has none (a dash), the bar is judged on the new one
    assert row(card, "encoder class accuracy, single test items")[:2] == ["0.937", "–"]
    assert row(card, "encoder class accuracy, single test items")[-1] == "≥ 0.935: **met**"
    assert row(card, "reference: encoder's tag head, colour and class of the test scenes' items")[:2] == ["0.938", "–"]
    # the chain's totals: both runs' CPU segments summed
    check_machines(card.split("The runs of the chain, per machine:")[1].split("###")[0], [enc, dec])
    assert "`docs/fashion-scenes.md`" in card and "The JSON does not record its command line" in card
    # inside the repository (weights/<name>/README.md) the data set spec is a relative link
    assert cards._link(cards.DATA_SPEC, ROOT / "weights" / name) == f"[{cards.DATA_SPEC}](../../{cards.DATA_SPEC})"
    assert "Weights evaluated: `runs/dec/export`" in card


def test_a_new_decoder_carries_the_encoder_stages_from_the_card_before(tmp_path):
    """The encoder's run directories are gone, the new decoder froze the same encoder: its stages come verbatim
    from the card before (written from their logs), the new run follows as the next stage."""
    name = "sat-hard-fashion-scenes"
    enc = write_run(tmp_path / "runs" / "enc", "sat-encoder", "attn_models.captioning.pretrain", "loss",
                    "val_class_acc")
    write_run(tmp_path / "runs" / "dec", name, "attn_models.captioning.train", "nll_per_word", "val_recall")
    shipped = {**older_captioning_json(name), "model": "runs/dec/export"}
    out = weights_folder(tmp_path, name, ("attention.png",)) / "README.md"
    evaluated = write_json(tmp_path / "m.json", shipped)
    cards.write_card(name, [tmp_path / "runs" / "enc", tmp_path / "runs" / "dec"], evaluated, out=out)
    old = tmp_path / "old-card.md"
    old.write_text(out.read_text())
    new = write_run(tmp_path / "runs" / "dec2", name, "attn_models.captioning.train", "nll_per_word", "val_recall",
                    start=3.0)
    cards.write_card(name, [tmp_path / "runs" / "dec2"], evaluated, out=out, earlier_card=old)
    card = out.read_text()
    stage1 = old.read_text().split("### Stage 1")[1].split("### Stage 2")[0]
    assert "#### Stage 1" + stage1 in card  # the encoder's section, verbatim, one level down
    assert "### Stage 2: `attn_models.captioning.train`" in card and "Stage 3" not in card
    assert "runs/dec2" in card and "`runs/dec`" not in card.split("### Stage 2")[1]  # the old decoder is not carried
    check_training_records(card, [enc, new])
    # the version after carries the same encoder stage again, from this card
    again = tmp_path / "card-v2.md"
    again.write_text(card)
    cards.write_card(name, [tmp_path / "runs" / "dec"], evaluated, out=out, earlier_card=again)
    assert "#### Stage 1" + stage1 in out.read_text() and "### Stage 2: `attn_models.captioning.train`" in card
    # a card written with an earlier description of the stage carries the description as the script writes it now
    stale = ("Encoder pretraining on a tag task from the training data (colour and class of a tinted Fashion-MNIST "
             "*train* item); its export is frozen by the decoder run. Validation: items of Fashion-MNIST *test* "
             "images.")  # what the cards of v6 and v7 say (the validation had moved to held-out training items)
    fresh = cards.STAGE_TEXT["attn_models.captioning.pretrain"]
    assert fresh in stage1 and stale not in stage1
    again.write_text(card.replace(fresh, stale))
    cards.write_card(name, [tmp_path / "runs" / "dec"], evaluated, out=out, earlier_card=again)
    assert "#### Stage 1" + stage1 in out.read_text() and stale not in out.read_text()
    with pytest.raises(ValueError, match="no earlier stage"):
        single = tmp_path / "single.md"
        single.write_text("# card\n\n### Stage 1: x\n\nsome run\n")
        cards.write_card(name, [tmp_path / "runs" / "dec2"], evaluated, out=out, earlier_card=single)


def test_same_weights_with_a_new_config_carry_every_stage_and_the_learning_curve(tmp_path):
    """A hard model switched to the expected context at test time (config.json's hard_context) and re-evaluated:
    its run directories are gone, so every stage (the decoder's too) comes from its card, the flags the prose needs
    from the last stage's flags block, and the learning curve stays; the card says which context it decodes with."""
    name = "sat-hard-fashion-scenes"
    write_run(tmp_path / "runs" / "enc", "sat-encoder", "attn_models.captioning.pretrain", "loss", "val_class_acc")
    dec = write_run(tmp_path / "runs" / "dec", name, "attn_models.captioning.train", "nll_per_word", "val_recall")
    info = json.loads((tmp_path / "runs" / "dec" / "train_info.json").read_text())
    info["args"] |= {"reward": "to_go", "reward_discount": 0.5, "entropy_weight": 0.003}
    (tmp_path / "runs" / "dec" / "train_info.json").write_text(json.dumps(info))
    folder = weights_folder(tmp_path, name, ("attention.png",))
    out = folder / "README.md"
    argmax = {**older_captioning_json(name), "hard_context": "argmax"}
    cards.write_card(name, [tmp_path / "runs" / "enc", tmp_path / "runs" / "dec"],
                     write_json(tmp_path / "a.json", argmax), out=out)
    assert "argmax of α" in out.read_text().split("## Use")[0]
    old = tmp_path / "card-before.md"
    old.write_text(out.read_text())
    curve = (folder / cards.CURVE).read_bytes()
    (folder / "model.safetensors").write_bytes(b"the same weights")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hard_context": "expect"}))
    expect = write_json(tmp_path / "e.json", {**argmax, "hard_context": "expect", "object_recall": 0.95})
    shutil.rmtree(tmp_path / "runs")
    cards.write_card(name, [], expect, previous=tmp_path / "a.json", out=out, earlier_card=old, same_weights=True)
    card = out.read_text()
    deviations = card.split("Deviations from the paper, on purpose:")[1].split("## ")[0]
    assert "expected one" in deviations and "argmax of α), so every map is one-hot" not in deviations
    assert "discount 0.5" in deviations  # the decoder's flags, read back from its card
    assert row(card, "hard attention's context at test time (`hard_context`)")[:2] == ["expect", "argmax"]
    assert row(card, "object recall")[0] == "0.950"
    for stage in ("1", "2"):  # both stages verbatim, one level down
        section = old.read_text().split(f"### Stage {stage}")[1].split("### Stage")[0].split("## Learning")[0]
        assert f"#### Stage {stage}" + section in card
    assert "### Stage 3" not in card and "#### Stage 3" not in card
    assert dec["segments"][-1]["command"] in card
    assert (folder / cards.CURVE).read_bytes() == curve
    assert "weights/sat-hard-fashion-scenes/model.safetensors" in card.split("## Provenance")[1]
    # this card names its weights: carrying it again onto other weights is refused
    shipped_card = tmp_path / "card-v8.1.md"
    shipped_card.write_text(card)
    cards.write_card(name, [], expect, out=out, earlier_card=shipped_card, same_weights=True)
    (folder / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(ValueError, match="describes other weights"):
        cards.write_card(name, [], expect, out=out, earlier_card=shipped_card, same_weights=True)
    with pytest.raises(ValueError, match="no run"):
        cards.write_card(name, [tmp_path / "x"], expect, out=out, earlier_card=old, same_weights=True)
    (folder / cards.CURVE).unlink()
    with pytest.raises(ValueError, match="learning curve"):
        cards.write_card(name, [], expect, out=out, earlier_card=old, same_weights=True)
    # the command line: --same-weights-from stands instead of --run
    with pytest.raises(SystemExit):
        cards.main([name, "--same-weights-from", str(old), "--run", "runs/x", "--eval", str(expect)])


def test_captioning_card_shows_the_faithfulness_numbers_when_evaluated(tmp_path):
    """`evaluate --faithfulness` adds faithfulness_* keys: rows with their spread; an older JSON shows dashes."""
    name = "sat-hard-fashion-scenes"
    write_run(tmp_path / "runs" / "dec", name, "attn_models.captioning.train", "nll_per_word", "val_recall")
    shipped = older_captioning_json(name)
    new = {**shipped, "faithfulness_drop_attended": 0.8019, "faithfulness_drop_attended_std": 1.9772,
           "faithfulness_drop_random": 0.0473, "faithfulness_drop_random_std": 0.2234,
           "faithfulness_drop_difference": 0.7546, "faithfulness_drop_difference_std": 1.9491,
           "faithfulness_attended_beats_random": 0.5656, "faithfulness_rank_correlation": 0.5297,
           "faithfulness_rank_correlation_std": 0.1346, "faithfulness_words": 4880, "faithfulness_draws": 5}
    out = weights_folder(tmp_path, name, ()) / "README.md"
    cards.write_card(name, [tmp_path / "runs" / "dec"], write_json(tmp_path / "m.json", new),
                     previous=write_json(tmp_path / "old.json", shipped), out=out)
    card = out.read_text()
    assert row(card, "occlusion: log-prob drop, attended cells hidden")[:3] == ["0.802 ± 1.977", "–", "–"]
    assert row(card, "occlusion: log-prob drop, as many random cells hidden")[0] == "0.047 ± 0.223"
    assert row(card, "occlusion: attended minus random drop")[0] == "0.755 ± 1.949"
    assert row(card, "occlusion: words losing more from attended cells")[0] == "0.566"
    assert row(card, "saliency vs α: Spearman rank correlation")[0] == "0.530 ± 0.135"
    assert row(card, "object words tested for faithfulness")[0] == "4,880"
    assert "`evaluate --faithfulness`" in card and "attn_models/captioning/faithfulness.py" in card
    for path in set(re.findall(r"attn_models/[\w/]+\.py", card)):
        assert (ROOT / path).is_file(), path


def test_sagan_card_columns_from_one_evaluation(tmp_path):
    name = "sagan-fashion-mnist-no-attention"
    info = write_run(tmp_path / "run", name, "attn_models.sagan.train", "loss_d", "val_fid")
    shipped = json.loads((ROOT / "weights" / "sagan-fashion-mnist" / "metrics.json").read_text())
    new = json.loads(json.dumps(shipped))
    new["rows"][name].update(fid=5.4321, class_consistency=0.91234)
    new["rows"][name]["class_consistency_per_class"]["shirt"] = 0.6543
    out = weights_folder(tmp_path, name) / "README.md"
    cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", new)),
                "--previous", str(ROOT / "weights" / "sagan-fashion-mnist" / "metrics.json"), "--out", str(out)])
    card = check_card_files(out)
    check_training_records(card, [info])
    mine, before = new["rows"][name], shipped["rows"][name]
    real = new["rows"]["real (Fashion-MNIST train)"]
    fid = row(card, "FID (classifier features)")
    assert fid[:3] == [f"{mine['fid']:.2f}", f"{before['fid']:.2f}", f"{mine['fid'] - before['fid']:+.2f}"]
    assert f"{real['fid']:.2f}" in fid and f"{new['rows']['sagan-fashion-mnist']['fid']:.2f}" in fid
    assert row(card, "class consistency")[-1] == "≥ 0.9: **met**"
    assert fid[-1] == "≤ 3: **not met**"  # 5.4321
    shirt = before["class_consistency_per_class"]["shirt"]
    assert row(card, "class consistency, shirt")[:2] == ["0.654", f"{shirt:.3f}"]
    assert row(card, "IS-style score")[0] == f"{mine['is_score']:.3f} ± {mine['is_score_std']:.3f}"
    assert new["command"] in card and "no self-attention" in card and "Self-attention block" not in card
    assert "trained as the attention ablation" in card and "the model behind" not in card
    # the shipped export kept its D, which has no attention either
    assert "the **discriminator** as trained (without attention, like G)" in card


def test_classifier_card_per_class_names(tmp_path):
    name = "fashion-mnist-classifier"
    info = write_run(tmp_path / "run", name, "attn_models.classifier.train", "loss", "val_accuracy")
    new = {"model": name, "test_accuracy": 0.9321, "test_accuracy_single_view": 0.9287, "n": 10000, "flip_tta": True,
           "per_class": {str(c): round(0.8 + c / 100, 4) for c in range(10)}}
    old = {**new, "test_accuracy": 0.9234, "per_class": {str(c): 0.5 for c in range(10)}}
    out = weights_folder(tmp_path, name, ()) / "README.md"
    Image.new("RGB", (4, 4)).save(out.parent / "samples.png")
    cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", new)),
                "--previous", str(write_json(tmp_path / "old.json", old)), "--out", str(out)])
    card = check_card_files(out)
    check_training_records(card, [info])
    assert row(card, "test accuracy (as shipped)")[:3] == ["0.9321", "0.9234", f"{0.9321 - 0.9234:+.4f}"]
    assert row(card, "accuracy, shirt")[:2] == [f"{new['per_class']['6']:.3f}", "0.500"]
    assert row(card, "test images")[0] == "10,000"
    assert row(card, "test accuracy (as shipped)")[-1] == "≥ 0.935: **not met**"  # 0.9321
    assert [line for line in card.splitlines() if "met**" in line] == [
        line for line in card.splitlines() if line.startswith("| test accuracy (as shipped) |")]


@pytest.fixture()
def minimal(tmp_path):
    name = "image-transformer-1d-fashion-mnist"
    write_run(tmp_path / "run", name, "attn_models.image_transformer.train", "bpd", "val_bpd")
    out = weights_folder(tmp_path, name, ()) / "README.md"
    return name, tmp_path / "run", out


def test_missing_eval_json_exits_naming_it(minimal, tmp_path):
    name, run, out = minimal
    with pytest.raises(SystemExit, match=re.escape(str(tmp_path / "nope.json"))):
        cards.main([name, "--run", str(run), "--eval", str(tmp_path / "nope.json"), "--out", str(out)])
    assert not out.exists()


def test_garbled_or_incomplete_eval_json_is_an_error(minimal, tmp_path):
    name, run, out = minimal
    bad = tmp_path / "bad.json"
    bad.write_text('{"bits_per_dim": 3.1,')
    with pytest.raises(ValueError, match=re.escape(str(bad)) + ".*not valid JSON"):
        cards.write_card(name, [run], bad, out=out)
    partial = write_json(tmp_path / "partial.json", {"bits_per_dim": 3.1})
    with pytest.raises(ValueError, match=re.escape(str(partial)) + ".*marginal_baseline_bits_per_dim"):
        cards.write_card(name, [run], partial, out=out)
    with pytest.raises(ValueError, match="no entry for 'sagan-fashion-mnist'"):
        cards.model_numbers("sagan", "sagan-fashion-mnist", {"rows": {"other": {}}}, partial)
    assert not out.exists()


def test_run_without_train_info_is_an_error(minimal, tmp_path):
    name, run, out = minimal
    ev = write_json(tmp_path / "e.json", {"bits_per_dim": 3.1, "marginal_baseline_bits_per_dim": 4.5,
                                          "test_images": 10})
    (run / "train_info.json").unlink()
    with pytest.raises(ValueError, match=re.escape(str(run / "train_info.json"))):
        cards.write_card(name, [run], ev, out=out)


def test_flags_block_holds_the_runs_flags_not_the_last_invocations_own(minimal, tmp_path):
    name, run, out = minimal
    ev = write_json(tmp_path / "e.json", {"bits_per_dim": 3.1, "marginal_baseline_bits_per_dim": 4.5,
                                          "test_images": 10})
    cards.write_card(name, [run], ev, out=out)
    block = out.read_text().split("The run's flags", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    assert json.loads(block) == {"max_steps": 500, "seed": 3, "batch_size": BATCH}
    assert "--resume --device cpu --export w" in out.read_text()  # the per-invocation flags, with their command


def test_log_drops_the_tail_of_a_lost_invocation(minimal):
    _, run, _ = minimal
    losses = [r for r in cards.read_log(run / "log.jsonl") if "lr" in r]
    assert [r["step"] for r in losses] == list(range(50, 501, 50))
    assert all(r["bpd"] != 99.0 for r in losses)


def test_inductive_bias_card_columns_from_one_evaluation(tmp_path):
    """Each inductive-bias card shows its model and, beside it, the other models of the same evaluation."""
    name = "inductive-bias-attention-relative"
    info = write_run(tmp_path / "run", name, "attn_models.inductive_bias.train", "loss", "val_accuracy")
    info["args"].update(weight_decay=0.05, lr=0.002, lr_schedule="cosine", warmup_steps=200, val_size=5000)
    (tmp_path / "run" / "train_info.json").write_text(json.dumps(info))

    def numbers(acc: float, err: float) -> dict:
        return {"test_accuracy": acc, "accuracy_at_shift": {str(s): acc - s / 100 for s in range(7)},
                "last_layer_equivariance_error": {str(s): err * s for s in range(1, 7)}, "shuffled_accuracy": 0.3,
                "test_images": 10000, "equivariance_images": 500}

    ev = {"command": "python -m attn_models.inductive_bias.evaluate inductive-bias-cnn " + name,
          "models": {name: numbers(0.85, 0.02), "inductive-bias-cnn": numbers(0.9, 0.0)}}
    out = tmp_path / "weights" / name / "README.md"
    out.parent.mkdir(parents=True)
    (out.parent / "config.json").write_text(json.dumps(
        {"kind": "attention", "widths": [32, 64, 64], "d_model": 64, "heads": 4, "layers": 3, "patch": 4,
         "position": "relative", "num_classes": 10}))
    Image.new("RGB", (4, 4)).save(out.parent / "samples.png")
    cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", ev)),
                "--out", str(out)])
    card = check_card_files(out)
    check_training_records(card, [info])
    assert row(card, "test accuracy, centred items")[:2] == ["0.8500", "0.9000"]
    assert row(card, "accuracy, item moved 6 px (mean of 4 directions)")[:2] == ["0.790", "0.840"]
    assert row(card, "equivariance error, last layer, shift (4, 4) px")[:2] == ["0.0800", "0.0000"]
    assert "relative position bias" in card and "centred** on a 40x40 black canvas" in card


def test_evaluation_only_rewrites_just_that_section_of_a_card_that_predates_the_scaffold(tmp_path):
    """Legacy captioning cards keep their text; the evaluation section (with faithfulness rows) is written from
    the evaluate JSON between markers, placed once and replaced on the next call."""
    name = "sat-soft-fashion-scenes"
    shipped = json.loads((ROOT / "weights" / name / "metrics.json").read_text())
    out = tmp_path / "README.md"
    legacy = "---\ntags: [x]\n---\n\n# title\n\nintro\n\n## Test-set metrics\n\nold table\n\n## Training\n\nold\n"
    out.write_text(legacy)
    new = {**shipped, "faithfulness_drop_attended": 0.8123, "faithfulness_drop_attended_std": 1.9,
           "faithfulness_drop_random": 0.0456, "faithfulness_drop_random_std": 0.3,
           "faithfulness_drop_difference": 0.7667, "faithfulness_drop_difference_std": 1.8,
           "faithfulness_attended_beats_random": 0.71, "faithfulness_rank_correlation": 0.53,
           "faithfulness_rank_correlation_std": 0.2, "faithfulness_words": 8400}
    e = write_json(tmp_path / "e.json", new)
    argv = [name, "--evaluation-only", "--eval", str(e), "--previous", str(ROOT / "weights" / name / "metrics.json"),
            "--out", str(out)]
    cards.main(argv)
    card = out.read_text()
    assert card.startswith("---\ntags: [x]\n---\n\n# title\n\nintro\n\n" + cards.BLOCK_START)
    assert card.endswith(cards.BLOCK_END + "\n\n## Test-set metrics\n\nold table\n\n## Training\n\nold\n")
    assert row(card, "occlusion: log-prob drop, attended cells hidden")[0] == "0.812 ± 1.900"
    assert row(card, "object recall")[:2] == [f"{shipped['object_recall']:.3f}"] * 2
    assert f"`{e}` (sha256 " in card and "--evaluation-only" in card
    new["faithfulness_drop_attended"] = 0.5
    cards.main(argv[:3] + [str(write_json(e, new))] + argv[4:])
    again = out.read_text()
    assert again.count(cards.BLOCK_START) == 1 and row(again, "occlusion: log-prob drop, attended cells hidden")[0] \
        == "0.500 ± 1.900"
    with pytest.raises(SystemExit):
        cards.main([name, "--eval", str(e)])  # neither --run nor --evaluation-only


def test_sagan_card_sets_the_ablation_beside_the_run(tmp_path, capsys):
    """--compare-run: the validation of another run at the steps both logged; evaluate --arm's arms: mean ± std."""
    name = "sagan-fashion-mnist-no-attention"
    write_run(tmp_path / "run", name, "attn_models.sagan.train", "loss_d", "val_fid")
    write_run(tmp_path / "ablation", name, "attn_models.sagan.train", "loss_d", "val_fid", start=3.0)
    (tmp_path / "ablation" / "train_info.json").unlink()  # still training: its log is enough
    ev = json.loads((ROOT / "weights" / "sagan-fashion-mnist" / "metrics.json").read_text())
    ev["arms"] = {"attention": {"members": ["runs/a0", "runs/a1"], "fid": 4.5, "fid_std": 0.25},
                  "none": {"members": ["runs/n0", "runs/n1"], "fid": 5.0, "fid_std": 0.5}}
    out = weights_folder(tmp_path, name) / "README.md"
    config = json.loads((out.parent / "config.json").read_text())
    write_json(out.parent / "config.json", {**config, "d_ch": 16, "d_attn_res": [16]})  # an export that kept D
    cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", ev)),
                "--compare-run", f"no attention={tmp_path / 'ablation'}", "--out", str(out)])
    card = out.read_text()
    # write_run logs val_fid = start / step every 100 steps: 1/300 here, 3/300 in the ablation
    assert row(card, "300") == [f"{1 / 300:.4g}", f"{3 / 300:.4g}"]
    assert "val_fid, this run | val_fid, no attention" in card and str(tmp_path / "ablation") in card
    arms = card.split("### Ablation arms", 1)[1]
    assert row(arms, "FID (classifier features)") == ["4.5000 ± 0.2500", "5.0000 ± 0.5000"]
    assert "attention (2 runs)" in card and "`runs/n1`" in card
    assert "self-attention at 16x16, global sum pooling" in card and "the **discriminator** as trained" in card
    with pytest.raises(SystemExit):
        cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(tmp_path / "e.json"),
                    "--compare-run", str(tmp_path / "ablation"), "--out", str(out)])
    assert "expected LABEL=RUN_DIR" in capsys.readouterr().err


def write_log(folder: Path, evals: dict[int, dict]) -> Path:
    """A compared run that is still training: only its log, one start record and validation at ``evals``' steps."""
    folder.mkdir(parents=True)
    log = [{"event": "start", "command": f"python -m attn_models.sagan.train --run-dir {folder} --attn-res none",
            "from_step": 0}]
    log += [{"step": step, "elapsed_s": float(step), "eval": ev} for step, ev in sorted(evals.items())]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return folder


def step_cost_json(path: Path, attention_s: float, none_s: float, **extra) -> Path:
    return write_json(path, {"attention_s_per_step": attention_s, "none_s_per_step": none_s,
                             "ratio": attention_s / none_s, "repeats": 17, "threads": 1, "torch": "2.14.1",
                             "load_average": {"before": [1.25, 1.0, 1.0], "after": [2.5, 1.0, 1.0]},
                             "command": "python bench/sagan_train_step.py --repeats 17 --json x.json", **extra})


def test_sagan_card_sets_the_ablation_beside_the_run_at_equal_wall_time(tmp_path, capsys):
    """--step-cost: this run's step S beside the compared run's validation logged nearest S x ratio (±500 steps).
    ratio 2.3 sends 100, 200, 300, 400, 500 to 230, 460, 690, 920, 1150: logged (every 100 up to 600) nearest
    200, 500, 600, 600 (320 away) and none (550 away), so neither the identity, the inverse ratio nor rounding
    down to a logged step gives this table."""
    name = "sagan-fashion-mnist"
    write_run(tmp_path / "run", name, "attn_models.sagan.train", "loss_d", "val_fid")
    ablation = write_log(tmp_path / "ablation", {s: {"val_fid": 3 / s} for s in range(100, 601, 100)})
    ev = json.loads((ROOT / "weights" / name / "metrics.json").read_text())
    out = weights_folder(tmp_path, name) / "README.md"
    cost = step_cost_json(tmp_path / "cost.json", 0.0345, 0.015)  # ratio 2.3
    argv = [name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", ev)),
            "--compare-run", f"no attention={ablation}", "--step-cost", str(cost), "--out", str(out)]
    cards.main(argv)
    card = out.read_text()
    steps_part, time_part = card.split("### Validation at equal wall time", 1)
    time_part = time_part.split("## ", 1)[0]
    assert row(steps_part, "300") == [f"{1 / 300:.4g}", f"{3 / 300:.4g}"]  # the equal-steps table is unchanged
    expected = {100: (230, 200), 200: (460, 500), 300: (690, 600), 400: (920, 600), 500: (1150, None)}
    for step, (target, near) in expected.items():
        if near is None:
            assert row(time_part, f"{step:,}") == [f"{target:,} → –", f"{1 / step:.4g}", "–"]
        else:
            assert row(time_part, f"{step:,}") == [f"{target:,} → {near:,}", f"{1 / step:.4g}", f"{3 / near:.4g}"]
    assert "| step, this run | step × ratio → nearest logged, no attention | val_fid, this run | " \
           "val_fid, no attention |" in time_part
    # where the ratio comes from: the JSON's medians, repeats, threads and command, and the file itself
    for text in ("costs 2.300 times", "34.5 ms against 15.0 ms", "17 interleaved repeats", "1 torch thread(s)",
                 "torch 2.14.1", "load average was 1.25 before and 2.50 after",
                 "`python bench/sagan_train_step.py --repeats 17 --json x.json`", f"`{cost}`", "±500 steps",
                 "no attention's at step 600", "`elapsed_s` is not used"):
        assert text in time_part, text
    assert f"`{cost}` (sha256 " in card.split("## Provenance")[1]
    assert f"`{ablation / 'log.jsonl'}` (sha256 " in card.split("## Provenance")[1]  # the compared run's log

    # --step-cost without a run to compare with, a JSON without its medians or with a ratio not theirs: errors
    with pytest.raises(SystemExit):
        cards.main([a for a in argv if a not in ("--compare-run", f"no attention={ablation}")])
    assert "--step-cost needs --compare-run" in capsys.readouterr().err
    bad = write_json(tmp_path / "bad.json", {"ratio": 2.3})
    with pytest.raises(SystemExit, match=re.escape(str(bad)) + ".*missing attention_s_per_step"):
        cards.main(argv[:-3] + [str(bad), "--out", str(out)])
    wrong = step_cost_json(tmp_path / "wrong.json", 0.0345, 0.015, ratio=1 / 2.3)
    with pytest.raises(SystemExit, match=re.escape(str(wrong)) + ".*ratio"):
        cards.main(argv[:-3] + [str(wrong), "--out", str(out)])
    # the no-attention run's own card cannot take the attention arm's ratio
    info = json.loads((tmp_path / "run" / "train_info.json").read_text())
    info["args"]["attn_res"] = "none"
    (tmp_path / "run" / "train_info.json").write_text(json.dumps(info))
    with pytest.raises(SystemExit, match="has no self-attention"):
        cards.main(argv)


def test_sagan_card_sets_the_arms_side_by_side_over_training(tmp_path):
    """evaluate --arm's members are exports inside their run directories: the card reads each run's log and sets
    the arms' validation as mean ± std over seeds at equal steps and, with --step-cost, at equal wall time, pairing
    the attention arm's step S with each no-attention run's logged step nearest S x ratio."""
    name = "sagan-fashion-mnist"
    write_run(tmp_path / "run", name, "attn_models.sagan.train", "loss_d", "val_fid")
    members = {}
    for arm, seeds in (("attention", {"a0": 1.0, "a1": 3.0}), ("no attention", {"n0": 4.0, "n1": 8.0})):
        for run, c in seeds.items():
            folder = write_log(tmp_path / run, {s: {"val_fid": c / s} for s in range(100, 801, 100)})
            write_json(folder / "args.json", {"attn_res": "none" if arm == "no attention" else "16", "seed": 0})
            members.setdefault(arm, []).append(str(folder / "export"))  # the export inside the run directory
    ev = json.loads((ROOT / "weights" / name / "metrics.json").read_text())
    ev["arms"] = {arm: {"members": m, "fid": 1.0, "fid_std": 0.1} for arm, m in members.items()}
    first = ev["rows"]["sagan-fashion-mnist-no-attention"]
    ev["rows"].update({m: {**first, "fid": 7.5} for arm in members.values() for m in arm})  # scored one by one
    out = weights_folder(tmp_path, name) / "README.md"
    cost = step_cost_json(tmp_path / "cost.json", 0.03, 0.015)  # ratio 2: S -> 2S
    cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", ev)),
                "--compare-run", f"no attention={tmp_path / 'n0'}", "--step-cost", str(cost), "--out", str(out)])
    part = out.read_text().split("### Ablation arms over training", 1)[1].split("## Training", 1)[0]
    steps_part, time_part = part.split("At equal wall time", 1)
    # mean of c/s over the seeds, and the population std: (1, 3)/s -> 2/s ± 1/s; (4, 8)/s -> 6/s ± 2/s
    assert row(steps_part, "300") == [f"{2 / 300:.4g} ± {1 / 300:.2g}", f"{6 / 300:.4g} ± {2 / 300:.2g}"]
    assert "val_fid, attention (2 seeds) | val_fid, no attention (2 seeds)" in steps_part
    assert row(time_part, "300") == ["600", f"{2 / 300:.4g} ± {1 / 300:.2g}", f"{6 / 600:.4g} ± {2 / 600:.2g}"]
    assert row(time_part, "700") == ["1,400", f"{2 / 700:.4g} ± {1 / 700:.2g}", "–"]  # 800 is 600 away
    assert "half the gap" in part
    table = out.read_text().split("## Evaluation", 1)[1].split("###", 1)[0]
    assert "sagan-fashion-mnist-no-attention" in table and "7.5" not in table  # the members: in the arms only
    provenance = out.read_text().split("## Provenance")[1]
    assert all(f"{tmp_path / run / 'log.jsonl'}` (sha256" in provenance for run in ("a0", "a1", "n0", "n1"))
    assert provenance.count(f"{tmp_path / 'n0' / 'log.jsonl'}`") == 1  # compared and an arm member: listed once
    # a member whose run is not at hand: said, not guessed
    ev["arms"]["attention"]["members"][1] = str(tmp_path / "gone" / "export")
    cards.main([name, "--run", str(tmp_path / "run"), "--eval", str(write_json(tmp_path / "e.json", ev)),
                "--out", str(out)])
    assert f"`{tmp_path / 'gone' / 'export'}`" in out.read_text() and "test set only" in out.read_text()


@pytest.mark.parametrize("a_fids, b_fids, verdict", [
    ((0.8, 1.0), (1.1, 1.2), "every *attention* run is better than every *no attention* run"),
    ((1.3, 1.5), (1.1, 1.2), "every *no attention* run is better than every *attention* run"),
    ((0.8, 1.15), (1.1, 1.2), "the arms overlap"),
    ((1.1, 1.0), (1.1, 1.2), "the arms overlap"),  # a tie is not a win
])
def test_the_arms_in_words_compare_run_by_run(a_fids, b_fids, verdict):
    rows = {f"a{i}": {"fid": f, "class_consistency": 0.9 + i / 100} for i, f in enumerate(a_fids)}
    rows |= {f"b{i}": {"fid": f, "class_consistency": 0.8 + i / 100} for i, f in enumerate(b_fids)}
    ev = {"rows": rows, "arms": {"attention": {"members": ["a0", "a1"]}, "no attention": {"members": ["b0", "b1"]}}}
    lines = cards.arms_verdict(ev, ev["arms"])
    fid = next(line for line in lines if line.startswith("- **FID"))
    assert verdict in fid and f"*attention* {min(a_fids):.4g}–{max(a_fids):.4g}" in fid and "lower is better" in fid
    consistency = next(line for line in lines if line.startswith("- **class consistency"))
    assert "every *attention* run is better" in consistency and "higher is better" in consistency
    assert not any("IS-style" in line for line in lines)  # not in the rows: not judged
    assert cards.arms_verdict({"rows": {}, "arms": ev["arms"]}, ev["arms"]) == []  # members not evaluated


def test_equal_time_pairs_the_nearest_logged_step_within_the_window():
    from attn_models.cards import EQUAL_TIME_WINDOW, _equal_time_step

    logged = [1000, 2000, 3000]
    assert _equal_time_step(logged, 2400) == 2000
    assert _equal_time_step(logged, 2500) == 2000  # a tie goes to the earlier step
    assert _equal_time_step(logged, 3000 + EQUAL_TIME_WINDOW) == 3000
    assert _equal_time_step(logged, 3001 + EQUAL_TIME_WINDOW) is None
    assert _equal_time_step([], 1000) is None


@pytest.mark.parametrize("reward", ["to_go", "sentence"])
def test_hard_captioning_card_names_the_reward_it_trained_with(tmp_path, reward):
    name = "sat-hard-fashion-scenes"
    run = tmp_path / "runs" / "dec"
    write_run(run, name, "attn_models.captioning.train", "nll_per_word", "val_recall")
    info = json.loads((run / "train_info.json").read_text())
    info["args"] |= {"reward": reward, "reward_discount": 0.5 if reward == "to_go" else 1.0,
                     "entropy_weight": 0.003}
    (run / "train_info.json").write_text(json.dumps(info))
    out = weights_folder(tmp_path, name, ("attention.png",)) / "README.md"
    shipped = older_captioning_json(name)
    cards.write_card(name, [run], write_json(tmp_path / "m.json", shipped), out=out)
    assert "an entropy bonus on α (weight λ_e = 0.003, `--entropy-weight`" in out.read_text()
    deviations = out.read_text().split("Deviations from the paper, on purpose:")[1].split("## ")[0]
    assert ("reward to go" in deviations and "discount 0.5" in deviations) == (reward == "to_go")
    assert "argmax of α" in deviations  # test-time hard attention, whatever the reward
    assert "doubly stochastic" not in deviations  # the soft model's deviation


@pytest.mark.parametrize("part", ["all", "output", "lstm-output", "all-but-attention"])
def test_soft_captioning_card_says_what_a_fine_tuning_stage_trained(tmp_path, part):
    name = "sat-soft-fashion-scenes"
    run = tmp_path / "runs" / "dec"
    write_run(run, name, "attn_models.captioning.train", "nll_per_word", "val_recall")
    info = json.loads((run / "train_info.json").read_text())
    info["args"] |= {"train_only": part, "feature_pool": 64000}
    (run / "train_info.json").write_text(json.dumps(info))
    out = weights_folder(tmp_path, name, ("attention.png",)) / "README.md"
    cards.write_card(name, [run], write_json(tmp_path / "m.json", older_captioning_json(name)), out=out)
    deviations = out.read_text().split("Deviations from the paper, on purpose:")[1].split("## ")[0]
    said = f"`train --train-only {part}`) on a larger pool of 64,000 other encoded scenes"
    assert (said in deviations) == (part != "all")
    if part != "all":
        assert cards.FINE_TUNED_PARTS[part][0] in deviations and "Nothing tells the model where" in deviations


def test_captioning_card_says_when_the_annotations_average_two_views(tmp_path):
    name = "sat-soft-fashion-scenes"
    run = tmp_path / "runs" / "dec"
    write_run(run, name, "attn_models.captioning.train", "nll_per_word", "val_recall")
    folder = weights_folder(tmp_path, name, ("attention.png",))
    config = json.loads((folder / "config.json").read_text())
    one_view = {k: v for k, v in config.items() if k != "encoder_flip_average"}
    (folder / "config.json").write_text(json.dumps(one_view))
    before = older_captioning_json(name)
    cards.write_card(name, [run], write_json(tmp_path / "b.json", before), out=folder / "README.md")
    assert "`encoder_flip_average`" not in (folder / "README.md").read_text()  # a config without it: no such line
    (folder / "config.json").write_text(json.dumps({**one_view, "encoder_flip_average": True}))
    now = write_json(tmp_path / "m.json", {**before, "encoder_flip_average": True})
    out = folder / "README.md"
    cards.write_card(name, [run], now, previous=write_json(tmp_path / "p.json", before), out=out)
    card = out.read_text()
    deviations = card.split("Deviations from the paper, on purpose:")[1].split("## ")[0]
    assert "mirrored left-right (`encoder_flip_average`; the decoder was trained on one view's" in deviations
    info = json.loads((run / "train_info.json").read_text())
    info["args"] |= {"encoder_flip_average": True}
    (run / "train_info.json").write_text(json.dumps(info))
    cards.write_card(name, [run], now, previous=write_json(tmp_path / "p.json", before), out=out)
    assert "(`encoder_flip_average`; the decoder's training scenes were encoded the same way)" in out.read_text()
    assert row(card, "annotations averaged over the image and its mirror (`encoder_flip_average`)")[0] == "True"


def test_every_train_only_part_has_its_card_text():
    from attn_models.captioning.train import TRAIN_ONLY

    assert set(cards.FINE_TUNED_PARTS) == {part for part, layers in TRAIN_ONLY.items() if layers is not None}
