"""Evaluate a captioning model on the fixed Fashion-Scenes test set (2,000 scenes of Fashion-MNIST *test*
images): BLEU-1..4, object recall, attention correctness and its uniform baseline (``metrics.py`` says how
each is computed), exact match; writes them as JSON (the ``metrics.json`` of weights/sat-*).

With ``--faithfulness``, also whether each object word of each caption depends on where the model looked
(``faithfulness.py``): the log-probability drop when the cells holding half of its attention are hidden vs as many
random other cells, and the rank correlation of its gradient saliency with α. Keys ``faithfulness_*``: means over
every colour and class word of every caption, with ``*_std`` their standard deviation over words. Scene i of the
test set draws its random cells with seed ``--faithfulness-seed`` + i. It takes longer than the rest together.

    python -m attn_models.captioning.evaluate sat-soft-fashion-scenes --json metrics.json [--faithfulness]
    python -m attn_models.captioning.evaluate weights/my-run [--limit 200] [--beam-size 3] [--figure attention.png]
    python -m attn_models.captioning.evaluate weights/my-run --validation --limit 1000   # to choose between models
    python -m attn_models.captioning.evaluate weights/my-run --validation --held-out-items --limit 1000
    python -m attn_models.captioning.evaluate weights/my-run --validation --held-out-items --limit 5000  # close calls
    python -m attn_models.captioning.evaluate sat-hard-fashion-scenes --validation --hard-context argmax

``--confusions`` says where the items recall misses went: every class word right after an item's colour, right
or wrong, with the share of its attention inside that item's box (as attention correctness measures it), the share
of wrong ones that looked mostly elsewhere (under half inside), the confusions as "item class -> class said": count,
and attention correctness over the colour words and the class words apart:

    python -m attn_models.captioning.evaluate weights/my-run --validation --held-out-items --limit 1000 --confusions

``--hard-context`` decodes a hard-attention model with the other test-time context than its config's
(``model.HARD_CONTEXTS``: the argmax cell, or the expected context as the authors' code does), to choose between them
on validation; the JSON records the one used (``hard_context``).
``--encoder-flip-average`` decodes from annotations averaged over the image and its left-right mirror
(``encoder_flip_average`` in ``model.py``), to choose that on validation; the JSON then has
``"encoder_flip_average": true``.

``--validation`` scenes are drawn from every training image, most of which the frozen encoder was pretrained on:
its recall there runs above the test set's (v8: 0.943 vs 0.927). With ``--held-out-items`` they are drawn from the
5,000 training items the encoder pretraining holds out, so decoders on encoders pretrained for different lengths
compare on items none of those encoders trained on (the v3/v4 encoders, before the hold-out, did).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from attn_models.captioning import faithfulness as faith
from attn_models.captioning.metrics import (
    attention_correctness,
    class_word_attention,
    corpus_bleu,
    item_cells_baseline,
    uniform_baseline,
)
from attn_models.captioning.model import HARD_CONTEXTS
from attn_models.captioning.train import validation_scenes
from attn_models.data.scenes import (
    COLOURS,
    TEST_SIZE,
    Scene,
    fixed_test_set,
    missed_items,
    object_recall,
)
from attn_models.registry import load_name_or_folder


def evaluate(model, scenes: list[Scene], beam_size: int = 3, max_len: int = 20, progress: bool = True,
             faithfulness_draws: int | None = None, faithfulness_seed: int = 0, confusions: bool = False) -> dict:
    """Caption every scene; BLEU-1..4, object recall, attention correctness and its uniform baseline; with
    ``faithfulness_draws``, the faithfulness tests of every object word with that many random draws; with
    ``confusions``, where the wrong classes came from (``confusion_numbers``)."""
    from PIL import Image
    from tqdm import tqdm

    hyps, named, total, corr, base, cells, tests = [], 0, 0, [], [], [], []
    confused = omitted = 0
    class_word_rows, corr_by_kind = [], {"colour": [], "class": []}
    faith_seconds = 0.0
    model.eval()
    annotations = None
    for i, s in enumerate(tqdm(scenes, disable=not progress, desc="captioning", mininterval=5)):
        if i % 100 == 0:  # the encoder runs batched; beam search runs per image
            with torch.no_grad():
                x = torch.cat([model.preprocess(Image.fromarray(t.image)) for t in scenes[i:i + 100]])
                annotations = model.encode(x)
        cap = model.caption_annotations(annotations[i % 100:i % 100 + 1], beam_size=beam_size, max_len=max_len)
        hyps.append(cap.words)
        n, t = object_recall(s, cap.words)
        named, total = named + n, total + t
        wrong_class, unnamed = missed_items(s, cap.words)
        confused, omitted = confused + wrong_class, omitted + unnamed
        if confusions:
            class_word_rows += class_word_attention(cap.alphas, cap.words, s)
        for w, c, u, k in zip(cap.words, attention_correctness(cap.alphas, cap.words, s),
                              uniform_baseline(s, cap.words),
                              item_cells_baseline(s, cap.words, np.asarray(cap.alphas).shape[1:]), strict=True):
            if c is not None:
                corr.append(c)
                corr_by_kind["colour" if w in COLOURS else "class"].append(c)
                base.append(u)
                cells.append(k)
        if faithfulness_draws:
            t0 = time.time()
            tests += faith.faithfulness(model, Image.fromarray(s.image), words=cap.words, draws=faithfulness_draws,
                                        seed=faithfulness_seed + i).tests
            faith_seconds += time.time() - t0
    out = corpus_bleu(hyps, [s.captions for s in scenes])
    out.update(object_recall=named / max(1, total),
               # the rest of the items: named with the right colour but the wrong class, or not named at all
               items_confused=confused / max(1, total), items_omitted=omitted / max(1, total),
               attention_correctness=float(np.mean(corr)) if corr else float("nan"),
               uniform_baseline=float(np.mean(base)) if base else float("nan"),
               item_cells_baseline=float(np.mean(cells)) if cells else float("nan"),
               object_words=len(corr), scenes=len(scenes), beam_size=beam_size,
               exact_match=float(np.mean([h in s.captions for h, s in zip(hyps, scenes, strict=True)])))
    if confusions:
        out.update(confusion_numbers(class_word_rows))
        # attention correctness over the colour words and over the class words of the named items, apart
        out.update({f"attention_correctness_{kind}_words": _mean(v) for kind, v in corr_by_kind.items()})
    if faithfulness_draws:
        out.update({f"faithfulness_{k}": v for k, v in faith.summary(tests).items()})
        out.update(faithfulness_draws=faithfulness_draws, faithfulness_seed=faithfulness_seed,
                   faithfulness_seconds=round(faith_seconds, 1))
    return out


def _mean(values: list) -> float:
    return float(np.mean(values)) if values else float("nan")


# The validation stream is unbounded (scene i has its own generator), unlike the fixed test set; 5,000 scenes take
# about two minutes per model at one thread.
VALIDATION_LIMIT = 10_000

# Fashion-MNIST's classes that differ most in texture and sleeve length rather than outline: where the captioners'
# frozen encoder makes most of its mistakes (docs/model-cards.md, the --confusions table).
UPPER_BODY = frozenset({"tshirt", "pullover", "coat", "shirt"})


def confusion_numbers(rows: list[tuple[str, str, float]]) -> dict:
    """From ``metrics.class_word_attention``'s rows of every caption: how much of a class word's attention sat on its
    item when the class was right and when it was wrong (a wrong class read off the item's own cells is the
    features' or the reading's fault, not the attention's), the share of wrong ones that looked mostly elsewhere,
    the share of confusions within Fashion-MNIST's four upper-body classes, and the confusions as
    "item class -> class said": count, most frequent first."""
    right = [m for true, said, m in rows if true == said]
    confused = [(true, said, m) for true, said, m in rows if true != said]
    wrong = [m for _, _, m in confused]
    within_upper_body = [true in UPPER_BODY and said in UPPER_BODY for true, said, _ in confused]
    pairs = Counter(f"{true} -> {said}" for true, said, _ in confused)
    return {"class_words_right": len(right), "class_words_wrong": len(wrong),
            "class_words_right_box_mass": _mean(right), "class_words_wrong_box_mass": _mean(wrong),
            "class_words_wrong_mostly_off_item": _mean([m < 0.5 for m in wrong]),
            "confusions_within_upper_body": _mean(within_upper_body),
            "confusions": dict(sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0])))}


def encoder_numbers(model, eval_json: str) -> dict:
    """The frozen encoder's item accuracies (``encoder_*``) from an ``evaluate_encoder`` JSON, after checking
    that the export it measured holds exactly this model's encoder."""
    from safetensors.torch import load_file

    from attn_models.captioning.pretrain import encoder_file

    ev = json.loads(Path(eval_json).read_text())
    exported = load_file(str(encoder_file(ev["export"])))
    mine = model.encoder.state_dict()
    if exported.keys() != mine.keys() or any(not torch.equal(exported[k], mine[k].cpu()) for k in mine):
        raise SystemExit(f"--encoder-eval {eval_json}: {ev['export']} holds another encoder than this model's")
    keys = ("test_class_acc", "test_colour_acc", "test_items", "val_class_acc",
            # evaluate_encoder --scenes: the tag head read inside each item's box in the test scenes
            "test_scene_item_acc", "test_scene_items")
    return ({f"encoder_{k}": ev[k] for k in keys if k in ev}
            | {"encoder_export": ev["export"], "encoder_sha256": encoder_sha256(model)})


def encoder_sha256(model) -> str:
    """sha256 of the frozen encoder's weights (every tensor's bytes, keys in order): which encoder numbers belong to."""
    h = hashlib.sha256()
    for key, tensor in sorted(model.encoder.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def carried_encoder_numbers(model, metrics_json: str) -> dict:
    """The ``encoder_*`` keys of an earlier ``evaluate --encoder-eval`` JSON of a model that froze the same encoder,
    for when that encoder's pretrain export (its tag head, which ``evaluate_encoder`` scores) is gone. Checked by the
    encoder's sha256 where that JSON records it (written since ``encoder_sha256`` exists)."""
    old = json.loads(Path(metrics_json).read_text())
    numbers = {k: v for k, v in old.items() if k.startswith("encoder_") and k != "encoder_numbers_from"}
    if "encoder_test_class_acc" not in numbers:
        raise SystemExit(f"--encoder-numbers-from {metrics_json}: no encoder_* numbers (not an --encoder-eval JSON)")
    mine = encoder_sha256(model)
    if numbers.get("encoder_sha256", mine) != mine:
        raise SystemExit(f"--encoder-numbers-from {metrics_json}: measured another encoder than this model's")
    return numbers | {"encoder_sha256": mine, "encoder_numbers_from": str(metrics_json)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m attn_models.captioning.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name (e.g. sat-soft-fashion-scenes) or a weights folder")
    p.add_argument("--limit", type=int, default=TEST_SIZE,
                   help=f"first N test scenes (default all {TEST_SIZE}); with --validation, first N validation scenes "
                        f"(up to {VALIDATION_LIMIT:,}: a larger draw to choose between close models)")
    p.add_argument("--validation", action="store_true",
                   help="the validation scenes instead (training images, the seed the training script validates "
                        "on): for choosing between models without looking at the test set")
    p.add_argument("--held-out-items", action="store_true",
                   help="with --validation: scenes of only the training items that the encoder's pretraining holds "
                        "out (pretrain --val-holdout, 5,000), which the encoders since v5 never trained on, so that "
                        "an encoder's memory of its own training items does not inflate recall: the fair "
                        "comparison of decoders on different encoders")
    p.add_argument("--beam-size", type=int, default=3)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="also write the metrics to this file")
    p.add_argument("--encoder-eval", help="the JSON of attn_models.captioning.evaluate_encoder for the encoder this "
                   "model froze (its export folder must hold the same encoder weights): adds its item accuracies")
    p.add_argument("--encoder-numbers-from", metavar="METRICS_JSON",
                   help="instead of --encoder-eval, when the encoder's pretrain export is gone: the encoder_* numbers "
                        "of an earlier --encoder-eval JSON of a model with the same frozen encoder (checked by its "
                        "sha256 where that JSON has it)")
    p.add_argument("--figure", help="also draw per-word attention for the first --figure-scenes test scenes")
    p.add_argument("--figure-scenes", type=int, default=3)
    p.add_argument("--faithfulness", action="store_true",
                   help="also the occlusion and saliency tests of every object word (faithfulness.py; slow)")
    p.add_argument("--faithfulness-draws", type=int, default=faith.DRAWS,
                   help=f"random cell sets per word (default {faith.DRAWS})")
    p.add_argument("--faithfulness-seed", type=int, default=0, help="scene i draws with this seed + i (default 0)")
    p.add_argument("--confusions", action="store_true",
                   help="also which classes the captions confused, and whether a wrong class word's attention sat "
                        "on its item (its share inside the item's box) or elsewhere")
    p.add_argument("--hard-context", choices=HARD_CONTEXTS,
                   help="hard attention's context at test time, instead of the one in the model's config")
    p.add_argument("--encoder-flip-average", action="store_true",
                   help="annotations averaged over the image and its mirror (model.py), whatever the config says")
    args = p.parse_args(argv)
    limit = VALIDATION_LIMIT if args.validation else TEST_SIZE
    if not 1 <= args.limit <= limit:
        p.error(f"--limit must be in 1..{limit}" + ("" if args.validation else " (the test set's size)"))
    if not 1 <= args.faithfulness_draws <= faith.MAX_DRAWS:
        p.error(f"--faithfulness-draws must be in 1..{faith.MAX_DRAWS}")
    if args.faithfulness_seed < 0:
        p.error("--faithfulness-seed must be >= 0")
    if args.encoder_eval and args.encoder_numbers_from:
        p.error("give --encoder-eval or --encoder-numbers-from, not both")
    if args.held_out_items and not args.validation:
        p.error("--held-out-items goes with --validation")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_name_or_folder(args.name, "captioning", args.device)
    if args.hard_context:
        if model.attention_kind != "hard":
            p.error("--hard-context is for a hard-attention model")
        model.hard_context = args.hard_context
    if args.encoder_flip_average:
        model.encoder_flip_average = True
    t0 = time.time()
    if args.validation:
        scenes = validation_scenes(args.limit, args.held_out_items)
    else:
        scenes = fixed_test_set(args.limit)
    metrics = evaluate(model, scenes, args.beam_size, args.max_len,
                       faithfulness_draws=args.faithfulness_draws if args.faithfulness else None,
                       faithfulness_seed=args.faithfulness_seed, confusions=args.confusions)
    argv = sys.argv[1:] if argv is None else argv
    split = ("validation, held-out items" if args.held_out_items else "validation") if args.validation else "test"
    metrics.update(model=args.name, attention=model.attention_kind, split=split,
                   **({"hard_context": model.hard_context} if model.attention_kind == "hard" else {}),
                   **({"encoder_flip_average": True} if model.encoder_flip_average else {}),
                   seconds=round(time.time() - t0, 1),
                   command="python -m attn_models.captioning.evaluate " + shlex.join(argv))
    if args.encoder_eval:
        metrics.update(encoder_numbers(model, args.encoder_eval))
    elif args.encoder_numbers_from:
        metrics.update(carried_encoder_numbers(model, args.encoder_numbers_from))
    print(json.dumps(metrics, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)
    if args.figure:
        from attn_models.captioning.figures import attention_figure

        attention_figure(model, fixed_test_set(args.figure_scenes), args.figure, args.beam_size)


if __name__ == "__main__":
    main()
