"""Write the model card (README.md) of a shipped Show, Attend and Tell model from measured numbers only:
the eval script's JSON output, the training runs' train_info.json / log.jsonl.

    python -m attn_models.captioning.card weights/sat-soft-fashion-scenes --metrics eval.json \
        --train-info checkpoints/sat-soft/train_info.json --encoder-log checkpoints/sat-encoder/log.jsonl \
        [--compare "lambda=0:eval-lambda0.json:checkpoints/sat-soft-lambda0/train_info.json"] --notes notes.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

METRIC_ROWS = [("BLEU-1", "bleu1"), ("BLEU-2", "bleu2"), ("BLEU-3", "bleu3"), ("BLEU-4", "bleu4"),
               ("object recall", "object_recall"), ("attention correctness", "attention_correctness"),
               ("uniform-attention baseline", "uniform_baseline"), ("exact match (caption is a reference)",
                                                                     "exact_match")]


def _records(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def metrics_table(columns: list[tuple[str, dict]]) -> str:
    head = "| metric | " + " | ".join(name for name, _ in columns) + " |"
    sep = "|---|" + "---|" * len(columns)
    rows = [f"| {label} | " + " | ".join(f"{m[key]:.3f}" for _, m in columns) + " |" for label, key in METRIC_ROWS]
    extra = ["| object words scored | " + " | ".join(str(m["object_words"]) for _, m in columns) + " |",
             "| test scenes | " + " | ".join(str(m["scenes"]) for _, m in columns) + " |"]
    return "\n".join([head, sep, *rows, *extra])


def _encoder_stage(encoder_log: list[dict]) -> tuple[str, dict]:
    """The commands of one encoder run (the fresh start and its resumptions) and its final record."""
    enc_final = [r for r in encoder_log if r.get("final")][-1]
    enc_starts = [r for r in encoder_log if r.get("start")]
    fresh = max(i for i, r in enumerate(enc_starts) if not r.get("resume"))
    cmds = "\n".join("python -m attn_models.captioning.train " + " ".join(r["argv"]) for r in enc_starts[fresh:])
    return cmds, enc_final


def _encoder_lines(encoder_logs: list[list[dict]]) -> list[str]:
    """One block per encoder run, in order (a later run starts from the one before: --encoder-init)."""
    lines = []
    for i, log in enumerate(encoder_logs):
        cmds, final = _encoder_stage(log)
        lines += ["```", cmds, "```", "",
                  f"   {final['step']} steps of 64 items, {final['elapsed'] / 60:.1f} min wall time; class accuracy "
                  f"{final['val_class_acc']:.3f} and colour accuracy {final['val_colour_acc']:.3f} on 2,000 "
                  "Fashion-MNIST *test* items (reported, not used for selection)"
                  + (", then:" if i + 1 < len(encoder_logs) else "."), ""]
    return lines


DEFAULT_HARDWARE = "on a 2-core CPU"


def write_card(weights_dir: str, metrics: dict, train_info: dict, encoder_logs: list[list[dict]],
               compare: list[tuple[str, dict, dict]], notes: str, figure: str | None,
               hardware: str = DEFAULT_HARDWARE) -> str:
    name = Path(weights_dir).name
    config = json.loads((Path(weights_dir) / "config.json").read_text())
    cols = [(name, metrics)] + [(label, m) for label, m, _ in compare]
    compare_runs = "\n".join(f"- {label}: `{info['command']}` ({info['steps']} steps, "
                             f"{info['wall_time_s'] / 60:.1f} min)" for label, _, info in compare)
    lines = [
        "---", "library_name: attn-models", "tags: [image-captioning, attention, show-attend-tell]",
        "datasets: [fashion_mnist]", "---", "",
        f"# {name}", "",
        f"Show, Attend and Tell (Xu et al. 2015) with **{config['attention']}** attention, trained on "
        "Fashion-Scenes (96x96 scenes of 1-3 tinted Fashion-MNIST items; see DESIGN.md and "
        "`attn_models/data/scenes.py`). It captions Fashion-Scenes; it was never trained on photos.", "",
        "```python", "from attn_models import load",
        f'm = load("{name}", device="cpu")',
        "cap = m.caption(pil_image, beam_size=3, max_len=20)  # cap.words, cap.alphas (T, 12, 12), cap.betas",
        "```", "",
        "## Test-set metrics", "",
        f"Fixed test set: `fashion_scenes(\"test\", {metrics['scenes']}, TEST_SEED)` (Fashion-MNIST test images "
        f"only), beam size {metrics['beam_size']}, produced by",
        "", f"    python -m attn_models.captioning.evaluate {name} --json metrics.json", "",
        "BLEU is sacrebleu's corpus BLEU against every reference of each scene (all item orders and all true "
        "relations). Object recall: share of items named by a matching `<colour> <class>` pair. Attention "
        "correctness (Liu et al. 2017): for each generated object word of a matching pair, the share of its "
        "attention (bilinearly upsampled to the 96x96 canvas) inside the item's box, averaged over words; "
        "the uniform baseline is box area / canvas area for the same words.", "",
        metrics_table(cols), "",
    ]
    if compare:
        lines += ["Compared runs (same encoder, data and schedule unless said):", "", compare_runs, ""]
    if figure:
        lines += ["## Per-word attention (first test scenes)", "",
                  f"![per-word attention]({figure})", "",
                  "Each panel: the word, the gate β, and for object words the attention correctness; "
                  "the white box is the item the word names.", ""]
    lines += [
        "## Training", "",
        "1. Encoder: the small CNN (`attn_models/captioning/encoder.py`, 12x12 grid of "
        f"{config.get('encoder_channels', 96)} channels, block widths "
        f"{list(config.get('encoder_widths', [24, 48, 64]))}) "
        "pretrained on a tag "
        "task from the training data (colour and class of one tinted Fashion-MNIST *train* item on a 40x40 "
        "canvas; `--tag-loss max`: per-cell logits max-pooled over the grid, `cells`: every cell labelled with "
        "the item whose box holds its centre, or background), then frozen:", "",
        *_encoder_lines(encoder_logs),
        "2. Decoder, on the frozen encoder:", "",
        "```", train_info["command"], "```", "",
        f"   {train_info['steps']} steps of {train_info['batch_size']} captions, "
        f"{train_info['wall_time_s'] / 60:.1f} min wall time (plus encoding the 16,000-scene pool once), "
        f"{hardware}.", "",
        "Model config: `" + json.dumps({k: v for k, v in config.items() if k != "vocab"}) + "`; the vocabulary "
        f"({len(config['vocab'])} words) is in config.json.", "",
    ]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    text = "\n".join(lines)
    (Path(weights_dir) / "README.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a captioning model card from measured numbers.")
    p.add_argument("weights_dir")
    p.add_argument("--metrics", required=True)
    p.add_argument("--train-info", required=True)
    p.add_argument("--encoder-log", required=True, action="append",
                   help="log.jsonl of the encoder run; repeat for a chain of runs (each --encoder-init the last)")
    p.add_argument("--compare", action="append", default=[], help="LABEL:METRICS_JSON:TRAIN_INFO_JSON")
    p.add_argument("--notes", help="markdown file appended as Notes")
    p.add_argument("--figure", help="image file name inside weights_dir")
    p.add_argument("--hardware", default=DEFAULT_HARDWARE, help="where the decoder trained, for the card")
    args = p.parse_args(argv)
    compare = []
    for spec in args.compare:
        label, mpath, ipath = spec.split(":")
        compare.append((label, json.loads(Path(mpath).read_text()), json.loads(Path(ipath).read_text())))
    write_card(args.weights_dir, json.loads(Path(args.metrics).read_text()),
               json.loads(Path(args.train_info).read_text()), [_records(p) for p in args.encoder_log], compare,
               Path(args.notes).read_text() if args.notes else "", args.figure, args.hardware)


if __name__ == "__main__":
    main()
