"""Write the model card (README.md) of shipped weights from measured files only.

    python -m attn_models.cards NAME --run runs/<run> [--run runs/<next stage> ...] --eval EVAL.json \\
        [--previous OLD_EVAL.json] [--previous-label LABEL] [--compare-run LABEL=RUN_DIR ...] \
        [--step-cost STEP_COST.json] [--out weights/NAME/README.md]
    python -m attn_models.cards NAME --same-weights-from OLD_CARD --eval EVAL.json [--previous ...]

NAME is a registry name; its task picks the metric rows (``METRICS``), the prose and the usage snippet. Each
``--run`` is a run directory of the training scaffold (``log.jsonl`` and ``train_info.json``), in the order of
the chain (captioning: the encoder pretraining run(s), then the decoder run). ``--eval`` is the JSON of the
task's ``evaluate --json``; ``--previous`` the same JSON of the version shipped before, shown as a second column.
``--compare-run`` sets another run's logged validation beside the last run's at the steps both evaluated (an
ablation at an equal number of steps); the ablation arms of a sagan ``evaluate --arm`` JSON get their own table.
``--step-cost`` (the JSON of ``bench/sagan_train_step.py``: seconds per training step of the attention arm and of
the no-attention arm, measured side by side) adds the same comparison at equal wall time: the last run's step S
beside the compared run's logged validation nearest step S x (attention / none).

Every number in the card is read from those files or from the weights folder's ``config.json``: the commands
of every invocation, steps, epochs and wall time per machine, the validation numbers, the test metrics. The
learning curve (``learning_curve.png``, beside the card) is drawn from the logs. The prose says what the code
does; it never states a result. ``docs/model-cards.md`` gives the whole sequence per model.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attn_models.data.fashion_mnist import CLASS_NAMES
from attn_models.registry import get_spec
from attn_models.training import PER_INVOCATION

REPO = Path(__file__).resolve().parent.parent
CURVE = "learning_curve.png"
DATA_SPEC = "docs/fashion-scenes.md"  # the Fashion-Scenes spec
GE, LE = "≥", "≤"


# ---- what a card shows of an eval JSON ------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One row of the evaluation table: ``key`` of the eval JSON (of the model's entry in it), shown as
    ``label`` with ``fmt``. ``each``: the key holds a dict, one row per entry, labelled by this template
    ({label}, {k} the entry's key, {cls} its Fashion-MNIST class name when the key is a class index)."""

    label: str
    key: str
    fmt: str = "{:.3f}"
    spread: str | None = None  # key of a standard deviation shown as ± after the value
    # (GE or LE, threshold) the model is held to, or {registry name: (GE or LE, threshold)} where they differ
    bar: tuple[str, float] | dict[str, tuple[str, float]] | None = None
    each: str | None = None
    optional: bool = False  # absent from some evaluate versions: a dash rather than an error


# The one table of metric rows per task.
METRICS: dict[str, tuple[Metric, ...]] = {
    "captioning": (
        Metric("BLEU-1", "bleu1"), Metric("BLEU-2", "bleu2"), Metric("BLEU-3", "bleu3"),
        Metric("BLEU-4", "bleu4", bar=(GE, 0.60)),
        Metric("object recall", "object_recall", bar=(GE, 0.93)),
        Metric("items named with the wrong class (right colour)", "items_confused", optional=True),
        Metric("items not named at all", "items_omitted", optional=True),
        Metric("attention correctness", "attention_correctness",
               bar={"sat-soft-fashion-scenes": (GE, 0.78), "sat-hard-fashion-scenes": (GE, 0.80)}),
        Metric("uniform-attention baseline", "uniform_baseline"),
        Metric("reference: attention spread evenly over the item's cells", "item_cells_baseline", optional=True),
        Metric("exact match (caption is a reference)", "exact_match"),
        Metric("object words scored", "object_words", "{:,}"),
        Metric("test scenes", "scenes", "{:,}"),
        Metric("beam size", "beam_size", "{}"),
        Metric("hard attention's context at test time (`hard_context`)", "hard_context", "{}", optional=True),
        Metric("annotations averaged over the image and its mirror (`encoder_flip_average`)", "encoder_flip_average",
               "{}", optional=True),
        # evaluate --encoder-eval only: the frozen encoder alone, on every Fashion-MNIST test item
        Metric("encoder class accuracy, single test items", "encoder_test_class_acc", bar=(GE, 0.935),
               optional=True),
        Metric("reference: encoder's tag head, colour and class of the test scenes' items",
               "encoder_test_scene_item_acc", optional=True),
        # evaluate --faithfulness only
        Metric("occlusion: log-prob drop, attended cells hidden", "faithfulness_drop_attended",
               spread="faithfulness_drop_attended_std", optional=True),
        Metric("occlusion: log-prob drop, as many random cells hidden", "faithfulness_drop_random",
               spread="faithfulness_drop_random_std", optional=True),
        Metric("occlusion: attended minus random drop", "faithfulness_drop_difference",
               spread="faithfulness_drop_difference_std", optional=True),
        Metric("occlusion: words losing more from attended cells", "faithfulness_attended_beats_random",
               optional=True),
        Metric("saliency vs α: Spearman rank correlation", "faithfulness_rank_correlation",
               spread="faithfulness_rank_correlation_std", optional=True),
        Metric("object words tested for faithfulness", "faithfulness_words", "{:,}", optional=True),
    ),
    "sagan": (
        Metric("FID (classifier features)", "fid", "{:.2f}", bar=(LE, 3.0)),
        Metric("class consistency", "class_consistency", "{:.4f}", bar=(GE, 0.90)),
        Metric("IS-style score", "is_score", spread="is_score_std"),
        Metric("generated images", "n", "{:,}"),
        Metric("class consistency", "class_consistency_per_class", "{:.3f}", each="{label}, {k}"),
        Metric("γ of G", "gammas", "{:+.4f}", each="{label} at {k}x{k}", optional=True),
        Metric("attention maps: JS divergence, two queries of one image (bits)", "query_jsd_within_image",
               spread="query_jsd_within_image_std", optional=True),
        Metric("attention maps: JS divergence, one query in two images (bits)", "query_jsd_across_images",
               spread="query_jsd_across_images_std", optional=True),
    ),
    "image_transformer": (
        Metric("bits/dim", "bits_per_dim", bar=(LE, 3.0)),
        Metric("per-position marginal baseline, bits/dim", "marginal_baseline_bits_per_dim"),
        Metric("test images", "test_images", "{:,}"),
    ),
    "classifier": (
        Metric("test accuracy (as shipped)", "test_accuracy", "{:.4f}", bar=(GE, 0.935)),
        Metric("test accuracy, single view", "test_accuracy_single_view", "{:.4f}"),
        Metric("mirror averaging at test time (flip_tta)", "flip_tta", "{}", optional=True),
        Metric("test images", "n", "{:,}"),
        Metric("accuracy", "per_class", "{:.3f}", each="{label}, {cls}"),
    ),
    "inductive_bias": (
        Metric("test accuracy, centred items", "test_accuracy", "{:.4f}"),
        Metric("accuracy, item moved", "accuracy_at_shift", "{:.3f}", each="{label} {k} px (mean of 4 directions)"),
        Metric("equivariance error, last layer", "last_layer_equivariance_error", "{:.4f}",
               each="{label}, shift ({k}, {k}) px"),
        Metric("accuracy with the 4x4 patches shuffled", "shuffled_accuracy", "{:.3f}"),
        Metric("test images", "test_images", "{:,}"),
        Metric("images behind the equivariance error", "equivariance_images", "{:,}"),
    ),
}


# ---- prose per task: what the code does, from config.json and the run's flags --------------------------
# captioning `train --train-only`: (what the fine-tuning stage trained, what it kept, what that does to the maps)
FINE_TUNED_PARTS = {
    "output": ("its deep output layer (L_h, L_z, L_o)",
               "the attention MLP, gate, LSTM, embedding and initial-state MLPs",
               "the maps under teacher forcing are the first stage's"),
    "lstm-output": ("its LSTM and deep output layer",
                    "the attention MLP (W_a, W_h, w), gate, embedding and initial-state MLPs",
                    "the maps move only as far as the LSTM's state does"),
    "all-but-attention": ("the layers outside its attention MLP", "the attention MLP (W_a, W_h, w)",
                          "the maps move only as far as the LSTM's state does"),
}


def _link(target: str, out_dir: Path) -> str:
    """A link to a file of this repository, relative to the card, so it works where the card sits in the
    repository (weights/<name>/); a card written elsewhere names the file instead."""
    folder = out_dir.resolve()
    if folder != REPO and REPO not in folder.parents:
        return f"`{target}` (in the attn-models repository)"
    return f"[{target}]({Path(os.path.relpath(REPO / target, folder)).as_posix()})"


def _captioning_text(cfg: dict, args: dict, out_dir: Path) -> list[str]:
    data = args.get("data", "fashion-scenes")
    trained_on = (f"Fashion-Scenes, {cfg['image_size']}x{cfg['image_size']} scenes of 1-3 tinted Fashion-MNIST "
                  f"items (spec: {_link(DATA_SPEC, out_dir)}; code: `attn_models/data/scenes.py`). It captions "
                  "Fashion-Scenes; it was never trained on photos" if data == "fashion-scenes" else f"`{data}`")
    grid = (f"a {cfg['image_size'] // 8}x{cfg['image_size'] // 8} grid of " if cfg["encoder"] == "small" else "")
    entropy = (f" (weight λ_e = {args['entropy_weight']:g}, `--entropy-weight`; the paper does not give its value)"
               if "entropy_weight" in args else "")
    context = ("z_t = β Σ_i α_ti a_i (soft: the expected context)" if cfg["attention"] == "soft" else
               "z_t = β a_s with s ~ Multinoulli(α_t) (hard), trained with REINFORCE (moving-average baseline), "
               f"an entropy bonus on α{entropy} and, with probability `--expect-prob`, the expected context")
    lines = [f"Show, Attend and Tell (Xu et al. 2015) with **{cfg['attention']}** attention, trained on {trained_on}.",
             "", "## Architecture (config.json)", "",
             f"- Encoder `{cfg['encoder']}` (`attn_models/captioning/encoder.py`): block widths "
             f"{list(cfg['encoder_widths'])}, {grid}{cfg['encoder_channels']}-channel annotation vectors; "
             "pretrained on a tag task (`attn_models/captioning/pretrain.py`), then frozen, as the paper freezes "
             "its ImageNet VGG.",
             f"- Decoder (`attn_models/captioning/decoder.py`): LSTM, hidden {cfg['hidden_dim']}, word embedding "
             f"{cfg['embed_dim']}; additive attention ({cfg['attn_dim']}-d); gate β = sigmoid(f_β(h_(t-1))); "
             f"{context}; deep output layer p(y_t) ∝ exp(L_o tanh(E y_(t-1) + L_h h_t + L_z z_t)) (the tanh as in "
             f"the authors' arctic-captions code); h_0, c_0 from MLPs on the mean annotation; dropout "
             f"{cfg['dropout']}; {len(cfg.get('vocab', []))}-word vocabulary.",
             "", "Deviations from the paper, on purpose:", ""]
    if cfg.get("coord_channels"):
        lines.append("- Two fixed coordinate channels (y, x) are appended to every annotation vector: the captions "
                     "say \"left of\" / \"above\", and CNN features say little about where they are.")
    lines.append("- The encoder is pretrained on a tag task from the training data instead of ImageNet, which has "
                 "nothing to say about tinted Fashion-MNIST; training encoder and decoder jointly from scratch "
                 "stalls at the language prior.")
    if cfg.get("encoder_flip_average"):
        trained = ("the decoder's training scenes were encoded the same way" if args.get("encoder_flip_average")
                   else "the decoder was trained on one view's annotations, so this is test-time augmentation only, "
                        "chosen on validation")
        lines.append("- The annotations are the mean of the frozen encoder's grid on the image and, mirrored back, on "
                     f"the image mirrored left-right (`encoder_flip_average`; {trained}): the encoder was pretrained "
                     "with random flips, so both views are its features of the same cells, and their mean names the "
                     "item classes more often on validation. The encoder rows of the evaluation are its tag head on "
                     "one view.")
    if cfg["attention"] == "soft" and not args.get("ds_lambda"):
        lines.append("- No doubly stochastic penalty (λ = 0; the paper's λ Σ_i (1 − Σ_t α_ti)² is there as "
                     "`--ds-lambda`), chosen on validation against λ = 0.01: the penalty asks every cell of the grid "
                     "for a total attention of 1 over the caption, and with far more cells than words it pulls each "
                     "word's attention off its item onto empty canvas.")
    if cfg["attention"] == "hard" and args.get("reward") == "to_go":
        d = args.get("reward_discount", 1.0)
        lines.append("- REINFORCE reward to go (`--reward to_go`): the paper weights every sampled location's "
                     "log-probability by the whole caption's log-likelihood minus a moving-average baseline; here "
                     f"location t is weighted by the discounted log-likelihood of the words from t on (discount {d:g}) "
                     "minus a moving average kept per word position. Leaving out the words before t changes nothing "
                     "in expectation (the location at t cannot change them); the discount is a bias taken for "
                     "less variance.")
    if cfg["attention"] == "hard" and cfg.get("hard_context", "argmax") == "argmax":
        lines.append("- At test time the context is the most likely location (argmax of α), so every map is one-hot; "
                     "the figures and the app draw it bilinearly upsampled, as attention correctness measures it. "
                     "The authors' code decodes a hard model with the expected context instead (`hard_context`).")
    elif cfg["attention"] == "hard":
        lines.append("- At test time the context is the expected one, Σ_i α_i a_i, as the authors' arctic-captions "
                     "code decodes a hard model by default (`generate_caps.py` without `-sampling`; the paper does not "
                     "say): the model is trained with sampled locations, half of its captions with this expectation "
                     "(Sec. 4.1), and its maps are the distribution α it would sample from. The other choice, the "
                     "most likely location (argmax of α, one-hot maps), is `hard_context` in config.json; the one "
                     "shipped was chosen on validation (`evaluate --validation --hard-context`).")
    stage = FINE_TUNED_PARTS.get(args.get("train_only", "all"))
    if stage is not None:
        part, kept, maps = stage
        pool = f" of {args['feature_pool']:,} other encoded scenes" if args.get("feature_pool") else ""
        notes = _link("docs/model-cards.md", out_dir)
        lines.append("- Two decoder stages where the paper trains one (the last two stages below): the whole decoder "
                     f"on a smaller pool of scenes, then only {part} (`train --train-only {args['train_only']}`) on "
                     f"a larger pool{pool}; {kept} kept from the first stage ({maps}). A soft decoder "
                     "trained on more scenes names items better but spreads its attention over more cells "
                     f"({notes}); this way the attention is learned on the small pool and the larger one mostly "
                     "teaches the reading of words. Nothing tells the model where the items are.")
    if args.get("targets") == "canonical":
        lines.append("- Training targets are the scene's reading-order caption (`scenes.canonical_caption`): with "
                     "every item order equally likely, the first word would be a mixture over the items. BLEU "
                     "still scores against every reference.")
    return lines


def _sagan_text(cfg: dict, args: dict, out_dir: Path) -> list[str]:
    ch, size = cfg["ch"], cfg["img_size"]
    n_up = (size // 4).bit_length() - 1  # log2(size / 4) up-blocks from the 4x4 seed
    widths = [ch * 2 ** (n_up - 1 - i) for i in range(n_up)]
    attn = cfg.get("attn_res") or []
    where = (f"**self-attention after the {', '.join(f'{r}x{r}' for r in attn)} block(s)**" if attn else
             "**no self-attention** (the ablation: the same network with the attention blocks removed)")
    canvas = " (28x28 zero-padded by 2)" if size == 32 and args.get("data", "fashion-mnist") == "fashion-mnist" else ""
    variant = ("*official-code variant*: f, g (C/8) and h (C/2) 1x1 SN convs, keys and values 2x2 max-pooled"
               if cfg["attn_variant"] == "official" else "*paper variant*: f, g, h at C/8, every position a key")
    role = ("the model behind the *Self-attention GAN* tab" if attn else
            "trained as the attention ablation (the tab's *attention off* switch skips the trained model's block "
            "instead)")
    return [f"Class-conditional **Self-Attention GAN** (Zhang et al. 2019) on {size}x{size} Fashion-MNIST{canvas}, "
            f"{role}. The weights are the **EMA generator**, BatchNorm "
            "statistics re-estimated for its averaged weights"
            + ((", and the **discriminator** as trained (the tab shows its attention and verdicts)."
                if cfg["d_attn_res"] else ", and the **discriminator** as trained (without attention, like G).")
               if "d_attn_res" in cfg and cfg["d_attn_res"] is not None else
               "; the discriminator was not kept in this export."), "",
            "## Architecture (config.json)", "",
            f"- G: z ({cfg['z_dim']}) → SN-linear → 4x4x{widths[0]} → {n_up} residual up-blocks (conditional BN, "
            f"SN 3x3 convs) of widths {', '.join(map(str, widths))} → BN-ReLU-SN conv-tanh; {where}.",
            "- D: residual down-blocks (SN), "
            + "".join(f"self-attention at {r}x{r}, " for r in cfg.get("d_attn_res") or [])
            + "global sum pooling, **projection** head for the class.",
            *([f"- Self-attention block, {variant}; softmax over keys, 1x1 SN output conv, y = γ·o + x with γ "
               "starting at 0."] if attn else []),
            "- Hinge loss, one D step per G step, TTUR with Adam betas (0, 0.9) (learning rates: the run's flags "
            "below); an EMA of G (with warm-up) for sampling.", "",
            "Deviations: per-class BN gains and biases are plain embeddings (as in the official code), not "
            f"spectrally normalised; base width {ch} (the paper's ImageNet networks are far wider)."]


def _image_transformer_text(cfg: dict, args: dict, out_dir: Path) -> list[str]:
    if cfg["attention"] == "local1d":
        pattern = (f"local 1D: query blocks of {cfg['query_len']} positions, memory of the {cfg['memory_len']} "
                   "positions before the block")
    elif cfg["attention"] == "local2d":
        pattern = (f"local 2D: query blocks of {cfg['block_h']}x{cfg['block_w']} positions in block-raster "
                   f"order, memory flange {cfg['flange_h']} rows above and {cfg['flange_w']} columns left/right")
    else:
        pattern = f"{cfg['attention']} attention"
    size, chans = cfg["image_size"], cfg["channels"]
    return [f"Image Transformer (Parmar et al. 2018) with **{pattern}**, "
            f"{'class-conditional' if cfg.get('num_classes') else 'unconditional'}, on {size}x{size}x{chans} "
            f"images ({size * size * chans} positions, one per pixel channel, a 256-way softmax each).", "",
            "## Architecture (config.json)", "",
            f"- {cfg['layers']} pre-norm layers, d_model {cfg['d_model']}, {cfg['heads']} heads, feed-forward "
            f"{cfg['ffn']}, dropout {cfg['dropout']} (`attn_models/image_transformer/model.py`).",
            "- As in the paper: every channel of every pixel is a position; channel-specific intensity "
            "embeddings of the previous position; row/column/channel position embeddings; masked local "
            "attention; categorical output.",
            "- Deviations: learned rather than sinusoidal position embeddings (the paper tried both); the class "
            "embedding is added to every position's input."]


def _classifier_text(cfg: dict, args: dict, out_dir: Path) -> list[str]:
    convs = ", ".join(f"x{n}" for n in cfg["convs_per_block"])
    return ["Small CNN on Fashion-MNIST, the **feature extractor of the GAN metrics** "
            "(`python -m attn_models.sagan.evaluate`): FID on its penultimate features (`features()`), class "
            "consistency and an Inception-Score-style score on its softmax.", "",
            "## Architecture (config.json)", "",
            f"- 3 conv blocks (conv3x3-BN-ReLU {convs} at widths {', '.join(map(str, cfg['widths']))}, each "
            f"max-pooled: 28 → 14 → 7 → 3), dropout {cfg['dropout']}, linear → {cfg['hidden']}, BN, ReLU (= the "
            f"features), dropout, linear → {cfg['num_classes']}. Inputs: 28x28, or 32x32 (centre-cropped: the GAN "
            "canvas is Fashion-MNIST padded by 2).",
            "- " + ("Test time: the features are the mean over the image and its mirror (`flip_tta` in "
                    "config.json); training flips too." if cfg.get("flip_tta") else "No test-time mirroring."),
            "- Training augmentation: random mirror and a ±2 px shift (`attn_models/classifier/train.py`)."]


def _inductive_bias_text(cfg: dict, args: dict, out_dir: Path) -> list[str]:
    if cfg["kind"] == "cnn":
        body = (f"{len(cfg['widths'])} stride-1 3x3 convolutions (zero padding, ReLU) of widths "
                f"{', '.join(map(str, cfg['widths']))} at full 40x40 resolution, then the mean over positions: "
                "translation equivariant by construction (exactly, away from the borders), then invariant.")
    else:
        pos = {"absolute": "a **learned absolute position embedding** per token (ViT-style)",
               "relative": "a **learned 2D relative position bias** per head and offset added to the attention "
                           "logits (Swin/T5-style tables): attention depends only on where tokens are relative to "
                           "each other",
               "none": "**no position information**: the net sees a set of patches (invariant to shuffling them)"}
        body = (f"the canvas cut into {cfg['patch']}x{cfg['patch']} patches (tokens), a linear embedding, "
                f"{pos[cfg['position']]}; {cfg['layers']} pre-norm transformer blocks (d={cfg['d_model']}, "
                f"{cfg['heads']} heads), then the mean over tokens.")
    training = (f"AdamW (weight decay {args['weight_decay']}), batch {args['batch_size']}, peak learning rate "
                f"{args['lr']} ({args['lr_schedule']} after {args['warmup_steps']} warm-up steps), "
                f"{args['max_steps']:,} steps" if args else "see the run below")
    return ["One of four small Fashion-MNIST classifiers trained **on equal terms** (same data, budget and "
            "optimiser) to measure what the article says a vision model needs: translation equivariance and the "
            "relative position of pixels (the *Inductive biases* tab). Every item is a 28x28 Fashion-MNIST image "
            "**centred** on a 40x40 black canvas; items are never shifted in training, so how a model copes with "
            "shifted items is what its inductive bias gives it.", "",
            "## Architecture (config.json)", "", f"- {body}", f"- Training: {training}; validation on "
            f"{args.get('val_size', 5000):,} training images held out from training "
            "(`attn_models/inductive_bias/train.py`).",
            "- Deviations: a toy scale (a few thousand steps on one CPU thread); the attention nets read 4x4 "
            "patches, so no position scheme can make them equivariant to shifts that are not whole patches."]


@dataclass(frozen=True)
class TaskCard:
    """What differs between the tasks' cards besides the metric rows."""

    text: Callable[[dict, dict, Path], list[str]]
    usage: str  # python lines, {name} filled in
    test_set: str  # what the evaluate script measures, in prose
    tags: str
    rows_key: str | None = None  # the eval JSON holds one entry per model under this key (sagan's --compare)
    seconds_key: str | None = None  # the eval's own wall time, when the JSON records it
    pictures: dict[str, str] = field(default_factory=dict)  # file -> caption


TASKS: dict[str, TaskCard] = {
    "captioning": TaskCard(
        _captioning_text,
        'm = load("{name}", device="cpu")\n'
        "cap = m.caption(pil_image, beam_size=3, max_len=20)  # cap.words, cap.alphas (T, gh, gw), cap.betas",
        "The fixed Fashion-Scenes test set (scenes of Fashion-MNIST *test* images), beam search. BLEU: sacrebleu's "
        "corpus BLEU against every reference of each scene (all item orders, all true relations). Object recall: "
        "share of items named by a matching `<colour> <class>` pair. Attention correctness (Liu et al. 2017): for "
        "each generated object word of a matching pair, the share of its attention (bilinearly upsampled to the "
        "canvas) inside the item's box, averaged over words; the uniform baseline is box area / canvas area for "
        "the same words, and the item-cells reference what a map spread evenly over the grid cells of the item's box "
        "scores (the upsampling carries some of it past the box edge; a map on the central cells scores near 1). "
        "Faithfulness (the occlusion and saliency rows, from `evaluate --faithfulness`; "
        "`attn_models/captioning/faithfulness.py`): for every colour and class word of every caption, the fewest "
        "grid cells holding half of its attention are filled with the background and the same caption is scored "
        "again (teacher forcing, hard attention with its test-time context); the drop of the word's log-probability "
        "(nats) is set against hiding as many random other cells (mean of the recorded number of draws). Saliency: "
        "|gradient| of the word's log-probability w.r.t. the pixels (Captum), summed per cell, ranked against α. "
        "± is the standard deviation over words.",
        "[image-captioning, attention, show-attend-tell]", seconds_key="seconds",
        pictures={"attention.png": "Per-word attention on the first test scenes: each panel shows the word, "
                                   "the gate β and, for object words, the attention correctness; the white box "
                                   "is the item the word names."}),
    "sagan": TaskCard(
        _sagan_text,
        'm = load("{name}")\nout = m.generate(labels=[0, 1, 2], seed=0)  # out.images uint8 (3, H, W, C), '
        "out.attention",
        "FID: torchmetrics' `FrechetInceptionDistance` on the penultimate features of `fashion-mnist-classifier` "
        "against the Fashion-MNIST **test** images, so *not* comparable with Inception-FID numbers in papers. "
        "Class consistency: share of generated images the classifier assigns to the requested class. IS-style "
        "score: exp(E KL(p(y|x) || p(y))) with the same classifier (10 splits, mean ± std; 10 is the maximum). "
        "Other columns of the same evaluation: the *real* row (Fashion-MNIST **train** images, the same number "
        "per class: the floor) and the models compared with `--compare`.",
        "[gan, sagan, self-attention, fashion-mnist]", rows_key="rows", seconds_key="wall_s",
        pictures={"samples.png": "One row per class, one column per latent (seed 0).",
                  "attention.png": "Query points (cyan rings) on generated images and the softmax weights of each "
                                   "query over the key grid, upsampled and overlaid (as in the paper's Fig. 1).",
                  "gamma_off.png": "The same latents with γ forced to 0 at inference "
                                   "(`generate(..., attention_off=True)`)."}),
    "image_transformer": TaskCard(
        _image_transformer_text,
        'm = load("{name}")\nimages = m.sample(8, labels=[7] * 8, temperature=1.0, seed=0)  # uint8 (8, H, W, C)',
        "Bits/dim on the Fashion-MNIST test set. Baseline: the per-position marginal, an independent 256-way "
        "histogram for every position estimated on the training images (add-one smoothing), scored on the same "
        "test images.",
        "[image-transformer, autoregressive, local-attention, fashion-mnist]", seconds_key="eval_seconds",
        pictures={"samples.png": "Samples, one row per class, temperature 1.0.",
                  "completions.png": "Completions of test images: the top rows are kept, the rest is sampled."}),
    "classifier": TaskCard(
        _classifier_text,
        'm = load("{name}")\nprobs = m.predict_proba(images)  # uint8 (N, 28, 28) -> (N, 10)\n'
        "feats = m.features(images)  # the FID embedding",
        "Accuracy on every Fashion-MNIST test image, as shipped (with the config's test-time mirror averaging) "
        "and from a single view; per class as shipped.",
        "[image-classification, fashion-mnist, feature-extractor]"),
    "inductive_bias": TaskCard(
        _inductive_bias_text,
        'm = load("{name}")\nprobs = m.predict_proba(items, dy=0, dx=3)  # uint8 (N, 28, 28) -> (N, 10), moved 3 px\n'
        "maps = m.features(canvases)  # one (N, C, h, w) map per layer",
        "The first Fashion-MNIST test images (how many: the *test images* row): accuracy with the item centred "
        "and moved 1..6 pixels (mean of up, down, left, right); the equivariance error "
        "||f(shift x) − shift f(x)|| / ||shift f(x)|| of the last layer's map "
        "(token grids spread over their patches) for diagonal shifts, away from the borders; accuracy with the "
        "canvas's 4x4 patches randomly permuted (mean of 3 permutations). The other columns are the other models "
        "of the same evaluation.",
        "[image-classification, inductive-bias, equivariance, self-attention, fashion-mnist]", rows_key="models"),
}


# ---- reading the files ----------------------------------------------------------------------------------
def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; a missing or garbled file is a ValueError naming it."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({what}): {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object ({what}), got {type(data).__name__}")
    return data


def read_log(path: Path) -> list[dict]:
    """log.jsonl's records. A resume restarts at its checkpoint: records past ``from_step`` belong to a tail
    that was lost and redone, so they are dropped (the redone steps' records follow)."""
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such file (the run's log, written by attn_models.training)")
    records: list[dict] = []
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not valid JSON: {e}") from None
        if rec.get("event") == "start":
            records = [r for r in records if "event" in r or r.get("step", 0) <= rec.get("from_step", 0)]
        records.append(rec)
    return records


@dataclass
class Run:
    folder: Path
    info: dict  # train_info.json
    log: list[dict]  # log.jsonl, lost tails dropped

    @property
    def module(self) -> str:
        words = self.info["segments"][0]["command"].split() if self.info.get("segments") else []
        return words[words.index("-m") + 1] if "-m" in words[:-1] else "?"


def read_run(folder: Path) -> Run:
    info = read_json(Path(folder) / "train_info.json", "written by attn_models.training at the end of a run")
    missing = [k for k in ("steps", "segments", "wall_time_s") if k not in info]
    if missing:
        raise ValueError(f"{folder}/train_info.json: missing {', '.join(missing)}")
    return Run(Path(folder), info, read_log(Path(folder) / "log.jsonl"))


def model_numbers(task: str, name: str, ev: dict, path: Path) -> dict:
    """The model's own entry of an eval JSON (sagan's JSON holds one per model, keyed by name)."""
    key = TASKS[task].rows_key
    if key is None:
        return ev
    rows = ev.get(key)
    if not isinstance(rows, dict) or name not in rows:
        raise ValueError(f"{path}: no entry for {name!r} under {key!r} "
                         f"(has: {', '.join(rows) if isinstance(rows, dict) else 'none'})")
    return rows[name]


def check_eval(task: str, numbers: dict, path: Path) -> None:
    missing = [m.key for m in METRICS[task] if not m.optional and m.key not in numbers]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (expected the JSON of "
                         f"`python -m attn_models.{task}.evaluate NAME --json ...`)")


# ---- formatting -----------------------------------------------------------------------------------------
def minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _sub_label(m: Metric, k: str) -> str:
    cls = CLASS_NAMES[int(k)] if str(k).isdigit() and int(k) < len(CLASS_NAMES) else k
    return m.each.format(label=m.label, k=k, cls=cls)


def _value(m: Metric, numbers: dict | None, sub: str | None):
    """The row's value in one column, None where that JSON has none."""
    if numbers is None or m.key not in numbers:
        return None
    return numbers[m.key] if sub is None else (numbers[m.key] or {}).get(sub)


def _cell(m: Metric, numbers: dict | None, sub: str | None = None) -> str:
    value = _value(m, numbers, sub)
    if value is None:
        return "–"
    text = m.fmt.format(value)
    if m.spread and numbers.get(m.spread) is not None:
        text += " ± " + m.fmt.format(numbers[m.spread])
    return text


def _delta(m: Metric, new: dict, old: dict | None, sub: str | None = None) -> str:
    """new - previous in the row's format with a sign; only for numbers shown with a format spec."""
    a, b = _value(m, new, sub), _value(m, old, sub)
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    if not numeric or not m.fmt.startswith("{:"):
        return "–"
    return ("{:+" + m.fmt[2:].lstrip("+")).format(a - b)


def _bar(m: Metric, new: dict, name: str) -> str:
    bar = m.bar.get(name) if isinstance(m.bar, dict) else m.bar
    if bar is None or new.get(m.key) is None:  # no bar, or an optional row this JSON lacks
        return ""
    op, level = bar
    value = new[m.key]
    met = value >= level if op == GE else value <= level
    return f"{op} {level:g}: **{'met' if met else 'not met'}**"


def metric_table(task: str, name: str, new: dict, previous: dict | None, prev_label: str,
                 references: list[tuple[str, dict]]) -> str:
    head = ["metric", "this model"] + ([prev_label, "change"] if previous is not None else [])
    bars = any(m.bar for m in METRICS[task])  # a column only for tasks held to a bar
    head += [label for label, _ in references] + (["bar"] if bars else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in METRICS[task]:
        columns = [new, previous, *(numbers for _, numbers in references)]
        if m.optional and all(m.key not in (numbers or {}) for numbers in columns):
            continue  # a row no column has (hard_context of a soft model, faithfulness not run)
        subs = [None] if m.each is None else list((new.get(m.key) or {}).keys())
        for sub in subs:
            label = m.label if sub is None else _sub_label(m, sub)
            cells = [label, _cell(m, new, sub)]
            if previous is not None:
                cells += [_cell(m, previous, sub), _delta(m, new, previous, sub)]
            cells += [_cell(m, numbers, sub) for _, numbers in references]
            cells += [_bar(m, new, name) if sub is None else ""] if bars else []
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---- training records -----------------------------------------------------------------------------------
def _machine(seg: dict) -> str:
    procs = seg.get("num_processes", 1)
    return (seg.get("hardware") or seg.get("device", "?")) + (f", {procs} processes" if procs > 1 else "")


def per_machine(runs: list[Run]) -> list[dict]:
    """Segments summed by machine, in order of first use: steps, wall time, examples and epochs."""
    out: dict[str, dict] = {}
    for run in runs:
        batch = run.info.get("batch_size_per_process") or 0
        per_epoch = _examples_per_epoch(run.info)
        for seg in run.info["segments"]:
            row = out.setdefault(_machine(seg), {"machine": _machine(seg), "steps": 0, "wall_s": 0.0,
                                                 "examples": 0, "epochs": 0.0 if per_epoch else None})
            steps = seg["to_step"] - seg["from_step"]
            examples = steps * batch * seg.get("num_processes", 1)
            row["steps"] += steps
            row["wall_s"] += seg["wall_time_s"]
            row["examples"] += examples
            if row["epochs"] is not None and per_epoch:
                row["epochs"] += examples / per_epoch
    return list(out.values())


def _examples_per_epoch(info: dict) -> float | None:
    """The scaffold writes epochs = steps * batch * (last invocation's processes) / examples per epoch."""
    if not info.get("epochs") or not info.get("segments"):
        return None
    procs = info["segments"][-1].get("num_processes", 1)
    return info["steps"] * info["batch_size_per_process"] * procs / info["epochs"]


def machine_table(runs: list[Run]) -> str:
    lines = ["| machine | steps | epochs | examples | wall time |", "|---|---|---|---|---|"]
    for row in per_machine(runs):
        epochs = "–" if row["epochs"] is None else f"{row['epochs']:.2f}"
        lines.append(f"| {row['machine']} | {row['steps']:,} | {epochs} | {row['examples']:,} | "
                     f"{minutes(row['wall_s'])} |")
    return "\n".join(lines)


def commands_block(run: Run) -> list[str]:
    """Every invocation that counted, in order, each after a comment saying where and how long it ran."""
    lines = ["```bash"]
    for i, seg in enumerate(run.info["segments"], 1):
        lines.append(f"# {i}: steps {seg['from_step']:,} -> {seg['to_step']:,}, {_machine(seg)}, "
                     f"{minutes(seg['wall_time_s'])}, started {seg.get('started', '?')}")
        lines.append(seg["command"])
    return lines + ["```"]


def _numbers(d: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in d.items())


def last_records(run: Run) -> list[str]:
    """The run's last training and validation records, as logged."""
    losses = [r for r in run.log if "lr" in r and "step" in r]
    evals = [r for r in run.log if isinstance(r.get("eval"), dict)]
    out = []
    if losses:
        last = {k: v for k, v in losses[-1].items() if k not in ("step", "elapsed_s")}
        out.append(f"- Last training record (step {losses[-1]['step']:,}): {_numbers(last)}.")
    if evals:
        out.append(f"- Last validation (step {evals[-1]['step']:,}): {_numbers(evals[-1]['eval'])}.")
    starts = sum(1 for r in run.log if r.get("event") == "start")
    lost = starts - len(run.info["segments"])
    if lost > 0:
        out.append(f"- {lost} more invocation(s) in the log stopped before their first checkpoint; their steps "
                   "were redone and are not counted above.")
    return out


STAGE_TEXT = {
    "attn_models.captioning.pretrain": "Encoder pretraining on a tag task from the training data (colour and "
                                       "class of a tinted Fashion-MNIST *train* item); its export is frozen by "
                                       "the decoder run. Validation: canvases of Fashion-MNIST *training* "
                                       "items held out from this run (`--val-holdout`; never the test set; an "
                                       "encoder started from an earlier one, `--encoder-init`, may have seen "
                                       "them there); the accuracy on the test items is in the table above.",
    "attn_models.captioning.train": "The attention decoder on the frozen encoder. Validation: greedy captions of "
                                    "scenes of *training* images (never the test set).",
}


def run_section(run: Run, index: int, chained: bool) -> list[str]:
    info = run.info
    title = f"### Stage {index}: `{run.module}` ({info.get('name', run.folder.name)})" if chained else "### Run"
    epochs = f"{info['epochs']:g}" if info.get("epochs") else "not recorded (no fixed epoch size)"
    lines = [title, ""]
    if run.module in STAGE_TEXT:
        lines += [STAGE_TEXT[run.module], ""]
    lines += [f"Run directory `{run.folder}`; the commands, in order:", "", *commands_block(run), "",
              f"- {info['steps']:,} steps of {info.get('max_steps', info['steps']):,} (the schedule's length), "
              f"{info.get('batch_size_per_process', '?')} examples per process and step, {epochs} epochs, "
              f"{minutes(info['wall_time_s'])} of training in all.",
              *last_records(run)]
    versions = info.get("versions") or {}
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    lines += ["", "Per machine:", "", machine_table([run]), ""]
    if info.get("args"):
        # train_info.json holds the last invocation's flags: a --resume invocation keeps the run's flags (the saved
        # args.json) but its own per-invocation ones (resume, threads, steps_this_run, ...), which the commands
        # above give for every invocation; printing those once as "the run's" would misstate the earlier ones.
        run_flags = {k: v for k, v in info["args"].items() if k not in PER_INVOCATION}
        lines += ["<details><summary>The run's flags (train_info.json; per-invocation flags such as "
                  "<code>--threads</code> or <code>--resume</code> are in the commands above)</summary>", "",
                  "```json", json.dumps(run_flags, sort_keys=True), "```", "", "</details>", ""]
    return lines


# ---- the learning curve ---------------------------------------------------------------------------------
def learning_curve(runs: list[Run], path: Path) -> Path:
    """One row per run: the logged training statistics, then each validation number, against step; dotted
    lines where an invocation resumed."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    series = [(_loss_series(r), _eval_series(r)) for r in runs]
    cols = 1 + max(len(ev) for _, ev in series)
    fig = Figure(figsize=(3.0 * cols, 2.3 * len(runs)), dpi=80, layout="constrained")
    axes = fig.subplots(len(runs), cols, squeeze=False)
    for row, (run, (losses, evals)) in enumerate(zip(runs, series, strict=True)):
        _plot(axes[row][0], losses, f"{run.info.get('name', run.folder.name)}: training", "-")
        for seg in run.info["segments"][1:]:
            axes[row][0].axvline(seg["from_step"], color="grey", linestyle=":", linewidth=1)
        for col, (key, points) in enumerate(evals.items(), 1):
            _plot(axes[row][col], {key: points}, f"validation: {key}", "o-")
        for col in range(1 + len(evals), cols):
            axes[row][col].set_visible(False)
    fig.savefig(path)
    return path


def _loss_series(run: Run) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for r in run.log:
        if "lr" in r and "step" in r:
            for k, v in r.items():
                if k not in ("step", "lr", "elapsed_s") and isinstance(v, int | float):
                    out.setdefault(k, []).append((r["step"], v))
    return out


def _eval_series(run: Run) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for r in run.log:
        for k, v in (r.get("eval") or {}).items():
            out.setdefault(k, []).append((r["step"], v))
    return out


def _plot(ax, series: dict[str, list[tuple[int, float]]], title: str, style: str) -> None:
    for key, points in series.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], style, markersize=3, linewidth=1, label=key)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("step", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.ticklabel_format(axis="y", useOffset=False)  # a metric pinned near 1 would read as "+1" and tiny offsets
    if series:
        ax.legend(fontsize=6)
    else:
        ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes, fontsize=7)


# ---- the card -------------------------------------------------------------------------------------------
def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def evaluation_section(task: str, name: str, ev: dict, eval_path: Path, previous: dict | None,
                       prev_path: Path | None, prev_label: str) -> list[str]:
    spec = TASKS[task]
    new = model_numbers(task, name, ev, eval_path)
    old = model_numbers(task, name, previous, prev_path) if previous is not None else None
    members = {m for arm in (ev.get("arms") or {}).values() for m in arm.get("members", [])}  # in the arms table
    refs = [(k, v) for k, v in ev[spec.rows_key].items() if k != name and k not in members] if spec.rows_key else []
    if ev.get("command"):
        how = f"Command: `{ev['command']}`."
    else:  # say so rather than guess its flags
        how = (f"The JSON does not record its command line; to re-run: "
               f"`python -m attn_models.{task}.evaluate {name} --json {eval_path.name}`.")
    lines = ["## Evaluation (test set)", "", spec.test_set, "", how]
    if spec.seconds_key and isinstance(ev.get(spec.seconds_key), int | float):
        lines.append(f"Evaluation wall time: {minutes(ev[spec.seconds_key])}.")
    if ev.get("model"):
        lines.append(f"Weights evaluated: `{ev['model']}`.")
    if previous is not None:
        lines.append(f"Column *{prev_label}*: `{prev_path}`, the version shipped before"
                     + (f" (`{previous['command']}`)." if previous.get("command") else "."))
    return lines + ["", metric_table(task, name, new, old, prev_label, refs), ""]


def arms_section(ev: dict) -> list[str]:
    """The ablation arms of an evaluation (sagan's ``evaluate --arm``): each arm's runs and mean ± spread over them."""
    arms = {label: arm for label, arm in (ev.get("arms") or {}).items() if arm.get("members")}
    if not arms:
        return []
    keys = [k for k in ARM_ROWS if all(k in arm for arm in arms.values())]
    lines = ["### Ablation arms", "",
             "Each arm: several runs of one setting (seeds), evaluated as above; mean ± standard deviation over them.",
             "", "| metric | " + " | ".join(f"{label} ({len(a['members'])} runs)" for label, a in arms.items()) + " |",
             "|---|" + "---|" * len(arms)]
    for k in keys:
        lines.append(f"| {ARM_ROWS[k]} | " + " | ".join(f"{a[k]:.4f} ± {a[k + '_std']:.4f}" for a in arms.values())
                     + " |")
    lines += ["", "Runs: " + "; ".join(f"{label}: " + ", ".join(f"`{m}`" for m in a["members"])
                                       for label, a in arms.items()) + ".", ""]
    return lines + arms_verdict(ev, arms)


ARM_LOWER_IS_BETTER = {"fid": True, "class_consistency": False, "is_score": False}


def _beats(x: list[float], y: list[float], lower_is_better: bool) -> bool:
    """Whether the worst value of x is better than the best of y."""
    return max(x) < min(y) if lower_is_better else min(x) > max(y)


def arms_verdict(ev: dict, arms: dict[str, dict]) -> list[str]:
    """In words, per headline metric, for two arms: whether every run of one arm beats every run of the other
    (from each member's own row of the evaluation), or the arms overlap."""
    rows = ev.get("rows") or {}
    if len(arms) != 2 or not all(m in rows for a in arms.values() for m in a["members"]):
        return []
    (la, a), (lb, b) = arms.items()
    out = []
    for k, lower in ARM_LOWER_IS_BETTER.items():
        if not all(k in rows[m] for arm in (a, b) for m in arm["members"]):
            continue
        va, vb = ([rows[m][k] for m in arm["members"]] for arm in (a, b))
        if _beats(va, vb, lower):
            verdict = f"every *{la}* run is better than every *{lb}* run"
        elif _beats(vb, va, lower):
            verdict = f"every *{lb}* run is better than every *{la}* run"
        else:
            verdict = f"the arms overlap: no difference that {min(len(va), len(vb))} runs per arm can show"
        ranges = f"*{la}* {min(va):.4g}–{max(va):.4g}, *{lb}* {min(vb):.4g}–{max(vb):.4g}"
        out.append(f"- **{ARM_ROWS[k]}**: {verdict} ({ranges}; {'lower' if lower else 'higher'} is better).")
    return (["In words, run by run:", "", *out, ""]) if out else []


def _arm_run(member: str) -> Run | None:
    """The training run behind an arm member: a run's ``--export`` folder inside its run directory, or the run
    directory itself; None when neither holds a log. Its flags: train_info.json's, else the scaffold's args.json."""
    for folder in (Path(member).parent, Path(member)):
        if (folder / "log.jsonl").is_file():
            info: dict = {}
            for file, key in (("train_info.json", "args"), ("args.json", None)):
                try:
                    data = read_json(folder / file, "the run's flags")
                except ValueError:
                    continue
                info = {"args": data.get(key) or {}} if key else {"args": data}
                break
            return Run(folder, info, read_log(folder / "log.jsonl"))
    return None


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.4g} ± {np.std(values):.2g}"


def arms_training_section(ev: dict, step_cost: tuple[Path, dict] | None) -> tuple[list[str], list[Path]]:
    """The ablation arms over training, from the validation their runs logged: each arm's mean ± spread over its
    seeds at the steps all of them evaluated; with ``step_cost``, also at equal wall time (the attention arm at S,
    the no-attention arm at its logged steps nearest S × ratio, run by run). Returns (lines, logs read)."""
    arms = {label: arm["members"] for label, arm in (ev.get("arms") or {}).items() if arm.get("members")}
    if len(arms) < 2:
        return [], []
    runs = {label: [_arm_run(m) for m in members] for label, members in arms.items()}
    lost = [m for label, members in arms.items() for m, r in zip(members, runs[label], strict=True) if r is None]
    if lost:
        return ["### Ablation arms over training", "",
                "The validation logs of " + ", ".join(f"`{m}`" for m in lost) + " (a `log.jsonl` in the member "
                "folder or the folder above it) are not at hand, so the arms are compared on the test set only.",
                ""], []
    series = {label: [{k: dict(v) for k, v in _eval_series(r).items()} for r in rs] for label, rs in runs.items()}
    every = [s for ss in series.values() for s in ss]
    keys = [k for k in every[0] if all(k in s for s in every)]
    steps = sorted(set.intersection(*(set(s[k]) for s in every for k in keys))) if keys else []
    if not steps:
        return [], []
    labels = [f"{label} ({len(arms[label])} seeds)" for label in arms]
    head = ["step"] + [f"{k}, {label}" for k in keys for label in labels]
    lines = ["### Ablation arms over training", "",
             "The validation each run of each arm logged (the same held-out images for every run), as mean ± "
             "standard deviation over the arm's seeds, at every step all of them evaluated: the arms at an equal "
             "number of steps.", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step in steps:
        lines.append(f"| {step:,} | " + " | ".join(_spread([s[k][step] for s in series[label]])
                                                   for k in keys for label in arms) + " |")
    lines.append("")
    attention = [label for label in arms if not any(_has_no_attention(r.info.get("args") or {}) for r in runs[label])]
    none = [label for label in arms if all(_has_no_attention(r.info.get("args") or {}) for r in runs[label])]
    if step_cost is not None and len(attention) == 1 and len(none) == 1:
        (a, n), ratio = (attention[0], none[0]), step_cost[1]["ratio"]
        head = ["step S, " + a, f"S × {ratio:.3f}"] + [f"{k}, {label}" for k in keys for label in (a, n)]
        lines += ["At equal wall time (one attention step costs as much as "
                  f"{ratio:.3f} no-attention steps, `{_shown(step_cost[0])}`, as above): the attention arm at step S "
                  f"beside each no-attention run at its logged step nearest S × {ratio:.3f}, where every one of them "
                  f"has one within ±{EQUAL_TIME_WINDOW:,} steps, else a dash.", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        a_steps = sorted(set.intersection(*(set(s[k]) for s in series[a] for k in keys)))
        for step in a_steps:
            target = int(round(step * ratio))
            near = [_equal_time_step(s[keys[0]], target) for s in series[n]]
            ok = all(t is not None and all(t in s[k] for k in keys) for t, s in zip(near, series[n], strict=True))
            cells = [f"{step:,}", f"{target:,}"]
            for k in keys:
                cells.append(_spread([s[k][step] for s in series[a]]))
                cells.append(_spread([s[k][t] for t, s in zip(near, series[n], strict=True)]) if ok else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["With two seeds, ± is half the gap between them.", ""] if all(len(m) == 2 for m in arms.values()) else []
    return lines, [r.folder / "log.jsonl" for rs in runs.values() for r in rs]


ARM_ROWS = {"fid": "FID (classifier features)", "class_consistency": "class consistency",
            "is_score": "IS-style score", "query_jsd_within_image": "JS divergence, two queries of one image (bits)",
            "query_jsd_across_images": "JS divergence, one query in two images (bits)"}


STEP_COST_KEYS = ("attention_s_per_step", "none_s_per_step", "ratio", "repeats", "threads", "command")
EQUAL_TIME_WINDOW = 500  # steps: how far the compared run's nearest validation may lie from S x ratio


def _equal_time_step(logged, target: int) -> int | None:
    """The logged step nearest ``target`` (the earlier one on a tie), or None when none lies within
    EQUAL_TIME_WINDOW steps of it: both equal-wall-time tables pair steps this way."""
    near = min(logged, key=lambda s: (abs(s - target), s), default=None)
    return near if near is not None and abs(near - target) <= EQUAL_TIME_WINDOW else None


def read_step_cost(path: Path) -> dict:
    """The JSON of ``bench/sagan_train_step.py``: both arms' median seconds per training step and their ratio."""
    cost = read_json(path, "written by `python bench/sagan_train_step.py --json ...`")
    missing = [k for k in STEP_COST_KEYS if k not in cost]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)} (expected the JSON of "
                         "`python bench/sagan_train_step.py --json ...`)")
    a, n, ratio = cost["attention_s_per_step"], cost["none_s_per_step"], cost["ratio"]
    if not all(isinstance(v, int | float) and v > 0 for v in (a, n, ratio)):
        raise ValueError(f"{path}: attention_s_per_step, none_s_per_step and ratio must be positive numbers")
    if abs(ratio - a / n) > 1e-6 * ratio:
        raise ValueError(f"{path}: ratio {ratio} is not attention_s_per_step / none_s_per_step ({a / n})")
    return cost


def _has_no_attention(args: dict) -> bool:
    """Whether a sagan run's flags (train_info.json's args) turned self-attention off in G and D; flags not
    recorded count as the task's default (attention at 16x16)."""
    g, d = (args["attn_res"],) * 2 if args.get("attn_res") is not None else (args.get("g_attn_res", "16"),
                                                                               args.get("d_attn_res", "16"))
    return all(str(r).strip().lower() in ("", "none") for r in (g, d))


def equal_time_section(run: Run, compared: list[tuple[str, dict]], keys: list[str], step_cost: tuple[Path, dict]
                       ) -> list[str]:
    """This run's (the attention arm's) validation at each logged step S beside each compared run's (taken to be
    the no-attention arm) at its logged step nearest S x ratio, where the ratio is the measured cost of one
    training step of the attention arm over one of the no-attention arm: a comparison at equal wall time."""
    path, cost = step_cost
    if _has_no_attention(run.info.get("args") or {}):
        raise ValueError(f"{run.folder}: --step-cost maps the attention arm's steps onto the no-attention arm's, "
                         "but this run has no self-attention (write the card of the attention run with it)")
    ratio = cost["ratio"]
    mine = {k: dict(v) for k, v in _eval_series(run).items() if k in keys}
    steps = sorted(set.intersection(*(set(v) for v in mine.values())))
    others = [(label, {k: dict(series[k]) for k in keys}) for label, series in compared]
    logged = [sorted(set.intersection(*(set(v) for v in o.values()))) for _, o in others]
    names = ["this run", *(label for label, _ in compared)]
    head = (["step, this run"] + [f"step × ratio → nearest logged, {label}" for label, _ in compared]
            + [f"{k}, {n}" for k in keys for n in names])
    load = cost.get("load_average")
    load_text = (f"; the 1-minute load average was {load['before'][0]:.2f} before and {load['after'][0]:.2f} after"
                 if isinstance(load, dict) and load.get("before") and load.get("after") else "")
    torch_text = f", torch {cost['torch']}" if cost.get("torch") else ""
    lines = ["### Validation at equal wall time", "",
             f"One training step (one D update, one G update, the EMA update) of the attention arm costs "
             f"{ratio:.3f} times one of the no-attention arm: {cost['attention_s_per_step'] * 1e3:.1f} ms against "
             f"{cost['none_s_per_step'] * 1e3:.1f} ms, medians of {cost['repeats']} interleaved repeats of each in "
             f"one process with {cost['threads']} torch thread(s){torch_text}, measured by "
             f"`{cost['command']}` (`{_shown(path)}`){load_text}. So this run at step S had taken as long as the "
             f"compared run at step S × {ratio:.3f}: each row sets this run's validation at S beside the compared "
             f"run's at its logged step nearest S × {ratio:.3f}, where one lies within ±{EQUAL_TIME_WINDOW:,} steps "
             "of it, else a dash. The compared runs are taken to be the no-attention arm. The logs' `elapsed_s` is "
             "not used: the runs were paused, resumed and shared the CPU with different neighbours.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step in steps:
        cells, values = [f"{step:,}"], {k: [f"{mine[k][step]:.4g}"] for k in keys}
        target = int(round(step * ratio))
        for (_, other), have in zip(others, logged, strict=True):
            near = _equal_time_step(have, target)
            if near is not None:
                cells.append(f"{target:,} → {near:,}")
                for k in keys:
                    values[k].append(f"{other[k][near]:.4g}")
            else:
                cells.append(f"{target:,} → –")
                for k in keys:
                    values[k].append("–")
        lines.append("| " + " | ".join(cells + [v for k in keys for v in values[k]]) + " |")
    ends = "; ".join(f"{label}'s at step {have[-1]:,}" for (label, _), have in zip(compared, logged, strict=True))
    lines += ["", f"The compared logs end where those runs stopped ({ends}): rows whose S × {ratio:.3f} lies more "
              f"than {EQUAL_TIME_WINDOW:,} steps past that are dashes.", ""]
    return lines


def equal_steps_section(run: Run, compared: list[tuple[str, Run]],
                        step_cost: tuple[Path, dict] | None = None) -> list[str]:
    """This run's validation numbers beside those of other runs at the steps all of them evaluated (e.g. the
    ablation, trained with the same schedule): a comparison at an equal number of steps, from the logs. With
    ``step_cost`` ((path, JSON) of ``bench/sagan_train_step.py``), also at equal wall time (``equal_time_section``)."""
    if not compared:
        return []
    mine = _eval_series(run)
    others = [(label, _eval_series(r)) for label, r in compared]
    keys = [k for k in mine if all(k in series for _, series in others)]
    steps = sorted(set.intersection(*({s for k in keys for s, _ in series[k]}
                                      for series in [mine, *(o for _, o in others)])))
    if not keys or not steps:
        raise ValueError(f"{run.folder} and the compared runs ({', '.join(str(r.folder) for _, r in compared)}) "
                         "share no validation metric at a common step")
    at = [{k: dict(series[k]) for k in keys} for series in [mine, *(o for _, o in others)]]
    names = ["this run", *(label for label, _ in compared)]
    head = ["step"] + [f"{k}, {n}" for k in keys for n in names]
    lines = ["### Validation at equal steps", "",
             "The same validation, logged by each run at the steps they share (one seed each unless said):",
             "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step in steps:
        lines.append(f"| {step:,} | " + " | ".join(f"{a[k][step]:.4g}" for k in keys for a in at) + " |")
    lines += ["", "Runs compared: " + "; ".join(f"{label}: `{r.folder}`" for label, r in compared) + ".", ""]
    if step_cost is not None:
        lines += equal_time_section(run, others, keys, step_cost)
    return lines


def pictures_section(task: str, out_dir: Path) -> list[str]:
    pics = sorted(p.name for p in out_dir.glob("*.png") if p.name != CURVE)
    if not pics:
        return []
    lines = ["## Pictures", ""]
    for pic in pics:
        caption = TASKS[task].pictures.get(pic, "")
        lines += [f"![{Path(pic).stem}]({pic})", ""] + ([caption, ""] if caption else [])
    return lines


def earlier_stages(card: Path, keep_last: bool = False) -> list[str]:
    """The run sections of a card this script wrote, except its last stage (the run being replaced), headings one
    level down: for a chain whose earlier run directories are gone (the captioning encoder a new decoder reuses).
    Stages that card itself carried (``#### Stage``) are carried again, so the chain survives every new version.
    ``keep_last``: every stage, the last one included (the same weights, re-evaluated: ``same_weights_args``)."""
    text = read_text_file(card, "the card of the version before, written by this script")
    sections, current = [], None
    for line in text.splitlines():
        if line.startswith(("### Stage ", "#### Stage ")):
            current = [line]
            sections.append(current)
        elif line.startswith(("## ", "### ")):
            current = None
        elif current is not None:
            current.append(line)
    kept = sections if keep_last else sections[:-1]
    if not kept:
        raise ValueError(f"{card}: no earlier stage to carry (it has {len(sections)} '### Stage' section(s))")
    for section in kept:  # the stage's description as this script writes it now (a correction carries)
        module = re.search(r"Stage \d+: `([\w.]+)`", section[0])
        text = STAGE_TEXT.get(module.group(1)) if module else None
        for i, line in enumerate(section):
            if text and line.startswith(text.split(";")[0]):
                section[i] = text
                break
    return [("#" + line if line.startswith("### ") else line) for section in kept for line in section]


def same_weights_args(carried: list[str], card: Path) -> dict:
    """The last carried stage's flags (its ``train_info.json`` args, which each stage section prints as a JSON block):
    what the card's prose needs when the weights are the ones ``card`` describes and their run directory is gone."""
    blocks = [json.loads(line) for line in carried if line.startswith("{") and line.endswith("}")]
    if not blocks:
        raise ValueError(f"{card}: no '### Stage' section with its flags (a ```json block) to read")
    return blocks[-1]


def check_same_weights(card: Path, weights_file: Path) -> None:
    """A card written since ``--same-weights-from`` exists names the weights it describes (sha256 in its provenance):
    refuse to carry its training onto other weights."""
    text = read_text_file(card, "the card of the version before, written by this script")
    named = re.search(r"`[^`]*model\.safetensors` \(sha256 ([0-9a-f]+)\)", text)
    if named and named.group(1) != _sha(weights_file):
        raise ValueError(f"{card} describes other weights (model.safetensors sha256 {named.group(1)}, "
                         f"{weights_file} has {_sha(weights_file)})")


def read_text_file(path: Path, what: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read {what} ({e.strerror})") from None


def card_text(name: str, runs: list[Run], ev: dict, eval_path: Path, previous: dict | None,
              prev_path: Path | None, prev_label: str, out: Path, command: str | None,
              compared: list[tuple[str, Run]] = (), step_cost: tuple[Path, dict] | None = None,
              earlier_card: Path | None = None, same_weights: bool = False) -> str:
    task = get_spec(name).task
    spec = TASKS[task]
    config_path = out.parent / "config.json"
    config = read_json(config_path, "the weights' config, written by save_pretrained")
    arm_lines, arm_logs = arms_training_section(ev, step_cost)
    carried = earlier_stages(earlier_card, keep_last=same_weights) if earlier_card is not None else []
    run_args = same_weights_args(carried, earlier_card) if same_weights else runs[-1].info.get("args") or {}
    try:
        about = spec.text(config, run_args, out.parent)
    except KeyError as e:
        raise ValueError(f"{config_path}: missing {e} (a {task} model's config)") from None
    lines = ["---", "library_name: pytorch", f"tags: {spec.tags}", "datasets: [fashion_mnist]", "---", "",
             f"# {name}", "", *about, "",
             "## Use", "", "```python", "from attn_models import load", spec.usage.format(name=name), "```", "",
             *evaluation_section(task, name, ev, eval_path, previous, prev_path, prev_label), *arms_section(ev),
             *arm_lines, "## Training", ""]
    if same_weights:
        lines += ["### The training of the version before, carried from its card", "",
                  "These are the weights of the version before (the same model.safetensors); only config.json "
                  "or the evaluation changed. Their run directories are not kept, so every stage's section is "
                  "taken (verbatim, but for the stage's description as this script writes it now) from that card "
                  f"(in the repository's history; sha256 {_sha(earlier_card)}), which this script wrote from "
                  "their logs, and so is the learning curve below.", "", *carried, ""]
    elif earlier_card is not None:
        lines += ["### Earlier stages, carried from the card of the version before", "",
                  "The stages before this version's own run(s) are runs of the version before (the run that "
                  "follows them starts from their weights); their run directories are not kept, so their sections "
                  "are taken (verbatim, but for the stage's description as this script writes it now) from "
                  f"that card (this card as it was shipped before, in the repository's history; sha256 "
                  f"{_sha(earlier_card)}), which this script wrote from their logs. The table and the "
                  "learning curve below cover this version's run(s) only.", "", *carried, ""]
    if len(runs) > 1:
        lines += ["The runs of the chain, per machine:", "", machine_table(runs), ""]
    first = 1 + sum(line.startswith("#### Stage ") for line in carried)
    for i, run in enumerate(runs, first):
        lines += run_section(run, i, len(runs) > 1 or earlier_card is not None)
    if runs:
        lines += equal_steps_section(runs[-1], list(compared), step_cost)
    weights_file = out.parent / "model.safetensors"
    weights = [weights_file] if same_weights and weights_file.is_file() else []
    lines += ["## Learning curve", "", f"![learning curve]({CURVE})", "",
              "Training statistics as logged (means over each `--log-every` window) and the validation numbers, "
              "against step, from `log.jsonl`; dotted lines: where an invocation resumed.", "",
              *pictures_section(task, out.parent), "## Provenance", "",
              _provenance(runs, eval_path, prev_path, config_path, command,
                          list(dict.fromkeys(weights + ([step_cost[0]] if step_cost is not None else [])
                                             + [r.folder / "log.jsonl" for _, r in compared] + arm_logs))), ""]
    return "\n".join(lines)


def _shown(path: Path) -> str:
    """A path as a reader of the card can follow it: relative to the repository (the working folder) when inside."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _provenance(runs: list[Run], eval_path: Path, prev_path: Path | None, config_path: Path,
                command: str | None, extra: list[Path] = ()) -> str:
    files = [eval_path] + ([prev_path] if prev_path else []) + [config_path]
    for run in runs:
        files += [run.folder / "train_info.json", run.folder / "log.jsonl"]
    files += list(extra)
    return _sources("Every number above", list(dict.fromkeys(files)), command)  # each file once


def _sources(what: str, files: list[Path], command: str | None) -> str:
    """The provenance line: the files ``what`` comes from, with their sha256, and the command that wrote it."""
    text = f"{what} comes from " + ", ".join(f"`{_shown(f)}` (sha256 {_sha(f)})" for f in files) + "."
    return text + (f" Written by `{command}`." if command else "")


def write_card(name: str, runs: list[Path], eval_path: Path, previous: Path | None = None,
               out: Path | None = None, previous_label: str = "previous", command: str | None = None,
               compare_runs: list[tuple[str, Path]] = (), step_cost: Path | None = None,
               earlier_card: Path | None = None, same_weights: bool = False) -> Path:
    """Write ``out`` (default weights/<name>/README.md) and learning_curve.png beside it; returns ``out``.
    ``compare_runs``: (label, run directory) of runs whose validation is set beside the last run's at equal steps;
    ``step_cost``: the JSON of ``bench/sagan_train_step.py``, which sets them beside it at equal wall time too.
    ``same_weights`` (with ``earlier_card`` and no runs): the weights that card describes, with a new config.json or
    evaluation; every stage is carried from it and the learning curve beside ``out`` is kept.
    Raises ValueError naming the file for a missing or malformed input."""
    spec = get_spec(name)
    out = Path(out) if out else spec.local_dir / "README.md"
    if same_weights:
        if runs or compare_runs or earlier_card is None:
            raise ValueError("same weights: give the card of the version before and no run (every stage is carried)")
        if not (out.parent / CURVE).is_file():
            raise ValueError(f"{out.parent / CURVE}: the learning curve of the version before is needed beside it")
        check_same_weights(Path(earlier_card), out.parent / "model.safetensors")
    elif not runs:
        raise ValueError("at least one --run is needed (the run directory holding train_info.json)")
    eval_path = Path(eval_path)
    ev = read_json(eval_path, f"written by `python -m attn_models.{spec.task}.evaluate {name} --json ...`")
    check_eval(spec.task, model_numbers(spec.task, name, ev, eval_path), eval_path)
    prev = read_json(Path(previous), "the previous version's eval JSON") if previous else None
    loaded = [read_run(Path(r)) for r in runs]
    # A compared run may still be training: its log is all this needs.
    compared = [(label, Run(Path(folder), {}, read_log(Path(folder) / "log.jsonl"))) for label, folder in compare_runs]
    if step_cost is not None and not compared:
        raise ValueError("--step-cost needs --compare-run (the no-attention run to set beside this one)")
    cost = (Path(step_cost), read_step_cost(Path(step_cost))) if step_cost is not None else None
    text = card_text(name, loaded, ev, eval_path, prev, Path(previous) if previous else None, previous_label,
                     out, command, compared, cost, Path(earlier_card) if earlier_card else None, same_weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not same_weights:
        learning_curve(loaded, out.parent / CURVE)
    out.write_text(text)
    return out


BLOCK_START = "<!-- evaluation section: written by python -m attn_models.cards --evaluation-only -->"
BLOCK_END = "<!-- end of the evaluation section -->"


def update_evaluation(name: str, eval_path: Path, previous: Path | None = None, out: Path | None = None,
                      previous_label: str = "previous", command: str | None = None) -> Path:
    """For weights that predate the training scaffold (no run directory to write a whole card from): keep the
    card's text and write only its evaluation section from ``eval_path``, between two markers (replaced when
    present, else placed before the card's first ``## `` heading), with its own provenance line."""
    spec = get_spec(name)
    out = Path(out) if out else spec.local_dir / "README.md"
    if not out.is_file():
        raise ValueError(f"{out}: no card to update (write one with --run)")
    eval_path = Path(eval_path)
    ev = read_json(eval_path, f"written by `python -m attn_models.{spec.task}.evaluate {name} --json ...`")
    check_eval(spec.task, model_numbers(spec.task, name, ev, eval_path), eval_path)
    prev = read_json(Path(previous), "the previous version's eval JSON") if previous else None
    files = [eval_path] + ([Path(previous)] if previous else [])
    block = [BLOCK_START, *evaluation_section(spec.task, name, ev, eval_path, prev,
                                              Path(previous) if previous else None, previous_label),
             *arms_section(ev), _sources("Every number in this section", files, command), BLOCK_END]
    text = out.read_text()
    if BLOCK_START in text and BLOCK_END in text:
        head, rest = text.split(BLOCK_START, 1)
        text = head + "\n".join(block) + rest.split(BLOCK_END, 1)[1]
    else:
        at = text.find("\n## ")
        if at < 0:
            raise ValueError(f"{out}: no '## ' heading to place the evaluation section before")
        text = text[:at + 1] + "\n".join(block) + "\n\n" + text[at + 1:]
    out.write_text(text)
    return out


def main(argv: list[str] | None = None) -> Path:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m attn_models.cards", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="NAME", help="registry name (python -m attn_models list)")
    p.add_argument("--run", action="append", metavar="RUN_DIR",
                   help="a run directory (log.jsonl + train_info.json); repeat for a chain, earliest stage first")
    p.add_argument("--evaluation-only", action="store_true",
                   help="weights that predate the training scaffold: keep the card and (re)write only its "
                        "evaluation section from --eval")
    p.add_argument("--eval", required=True, metavar="EVAL_JSON", help="the task's evaluate --json output")
    p.add_argument("--previous", metavar="OLD_EVAL_JSON", help="the same JSON of the version shipped before")
    p.add_argument("--previous-label", default="previous", help="header of the previous version's column")
    p.add_argument("--compare-run", action="append", default=[], metavar="LABEL=RUN_DIR",
                   help="another run (e.g. the ablation, same schedule) whose validation numbers are shown beside "
                        "this one's at the steps both logged; repeatable")
    p.add_argument("--step-cost", metavar="STEP_COST_JSON",
                   help="with --compare-run: the JSON of bench/sagan_train_step.py (seconds per training step with "
                        "and without attention), to set the compared runs beside this one at equal wall time too")
    p.add_argument("--earlier-stages-from", metavar="OLD_CARD",
                   help="a copy of a card this script wrote (--out overwrites the card) whose stages before its "
                        "last are this version's too (the same frozen encoder) and whose run directories are gone: "
                        "their sections are carried verbatim")
    p.add_argument("--same-weights-from", metavar="OLD_CARD",
                   help="instead of --run: the weights are the ones this copy of their card (written by this script) "
                        "describes, and only config.json (e.g. hard attention's test-time context) or the evaluation "
                        "changed; every stage and the learning curve are carried")
    p.add_argument("--out", help="the card to write (default weights/NAME/README.md); config.json is read and "
                                 "learning_curve.png written beside it")
    args = p.parse_args(argv)
    if sum((bool(args.run), args.evaluation_only, bool(args.same_weights_from))) != 1:
        p.error("give one of --run (a whole card), --same-weights-from (a whole card, every stage carried) or "
                "--evaluation-only (only the evaluation section)")
    if args.same_weights_from and (args.earlier_stages_from or args.compare_run):
        p.error("--same-weights-from carries every stage itself and compares no run")
    command = "python -m attn_models.cards " + shlex.join(argv)
    compare_runs = []
    for item in args.compare_run:
        label, sep, folder = item.partition("=")
        if not sep or not label or not folder:
            p.error(f"--compare-run {item!r}: expected LABEL=RUN_DIR")
        compare_runs.append((label, Path(folder)))
    if compare_runs and args.evaluation_only:
        p.error("--compare-run needs --run (the run to compare with)")
    if args.step_cost and not compare_runs:
        p.error("--step-cost needs --compare-run (the no-attention run to set beside this one)")
    try:
        if args.evaluation_only:
            out = update_evaluation(args.name, args.eval, args.previous, args.out, args.previous_label, command)
            print(f"updated the evaluation section of {out}")
            return out
        out = write_card(args.name, args.run or [], args.eval, args.previous, args.out, args.previous_label, command,
                         compare_runs, args.step_cost, args.same_weights_from or args.earlier_stages_from,
                         same_weights=bool(args.same_weights_from))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {out}" + ("" if args.same_weights_from else f" and {out.parent / CURVE}"))
    return out


if __name__ == "__main__":
    main()
