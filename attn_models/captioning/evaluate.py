"""Captioning metrics on the fixed Fashion-Scenes test set: BLEU-1..4, object recall, attention correctness.

Attention correctness follows Liu et al. 2017 ("Attention Correctness in Neural Image Captioning"):
for each generated object word that names an item of the scene, the share of its attention mass,
upsampled to the canvas, that falls inside the item's box. The uniform baseline is what a map spread
evenly over the canvas would score: box area / canvas area.

    python -m attn_models.captioning.evaluate sat-soft-fashion-scenes [--limit 200] [--beam-size 3]
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from attn_models.data.scenes import CANVAS, Scene, word_boxes


def upsample_attention(alpha: np.ndarray, size: int = CANVAS) -> np.ndarray:
    """(gh, gw) map -> (size, size) map with the same total mass (bilinear, then renormalised).

    Bilinear rather than block upsampling because that is how the maps are shown, and a cell's
    receptive field is centred on the cell, not confined to it.
    """
    t = torch.as_tensor(np.asarray(alpha, dtype=np.float64))[None, None]
    up = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0, 0].clamp_min(0).numpy()
    total = up.sum()
    return up / total if total > 0 else np.full((size, size), 1.0 / size**2)


def attention_correctness(alphas: np.ndarray, words: list[str], scene: Scene) -> list[float | None]:
    """Per word: share of its attention (upsampled to the canvas) inside its item's box; None for
    words that do not name an item of the scene (see ``scenes.match_items``)."""
    alphas = np.asarray(alphas)
    if alphas.ndim != 3 or alphas.shape[0] != len(words):
        raise ValueError(f"alphas must be (len(words), gh, gw) = ({len(words)}, gh, gw), got {alphas.shape}")
    out: list[float | None] = []
    for alpha, box in zip(alphas, word_boxes(scene, words), strict=True):
        if box is None:
            out.append(None)
            continue
        up = upsample_attention(alpha)
        out.append(float(up[box[0]:box[2], box[1]:box[3]].sum()))
    return out


def uniform_baseline(scene: Scene, words: list[str]) -> list[float | None]:
    """Attention correctness of a uniform map, per word: box area / canvas area (None for non-object words)."""
    return [None if b is None else (b[2] - b[0]) * (b[3] - b[1]) / CANVAS**2 for b in word_boxes(scene, words)]


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]]) -> dict[str, float]:
    """BLEU-1..4 in [0, 1] with sacrebleu, corpus level, every reference of every image.

    Captions are already lower-case words, so sacrebleu's tokenizer is off (``tokenize="none"``).
    Images with fewer references are padded with None, which sacrebleu skips.
    """
    from sacrebleu.metrics import BLEU

    n_refs = max(len(r) for r in references)
    streams = [[" ".join(r[k]) if k < len(r) else None for r in references] for k in range(n_refs)]
    hyps = [" ".join(h) for h in hypotheses]
    return {f"bleu{n}": BLEU(max_ngram_order=n, tokenize="none").corpus_score(hyps, streams).score / 100
            for n in range(1, 5)}


def evaluate(model, scenes: list[Scene], beam_size: int = 3, max_len: int = 20, progress: bool = True) -> dict:
    """Caption every scene; BLEU-1..4, object recall, attention correctness and its uniform baseline."""
    from PIL import Image
    from tqdm import tqdm

    from attn_models.data.scenes import object_recall

    hyps, named, total, corr, base = [], 0, 0, [], []
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
        for c, u in zip(attention_correctness(cap.alphas, cap.words, s), uniform_baseline(s, cap.words),
                        strict=True):
            if c is not None:
                corr.append(c)
                base.append(u)
    out = corpus_bleu(hyps, [s.captions for s in scenes])
    out.update(object_recall=named / max(1, total),
               attention_correctness=float(np.mean(corr)) if corr else float("nan"),
               uniform_baseline=float(np.mean(base)) if base else float("nan"),
               object_words=len(corr), scenes=len(scenes), beam_size=beam_size,
               exact_match=float(np.mean([h in s.captions for h, s in zip(hyps, scenes, strict=True)])))
    return out


def attention_figure(model, scenes: list[Scene], path: str, beam_size: int = 3) -> None:
    """One row per scene: the image, then each word's attention (upsampled, over the image) with the
    word, its gate beta and, for object words, its attention correctness; the item's box in white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    caps = [model.caption(Image.fromarray(s.image), beam_size=beam_size) for s in scenes]
    cols = 1 + max(len(c.words) for c in caps)
    fig, axes = plt.subplots(len(scenes), cols, figsize=(1.6 * cols, 2.0 * len(scenes)), squeeze=False)
    for row, (s, cap) in enumerate(zip(scenes, caps, strict=True)):
        axes[row, 0].imshow(s.image)
        axes[row, 0].set_title("input", fontsize=8)
        corr = attention_correctness(cap.alphas, cap.words, s)
        boxes = word_boxes(s, cap.words)
        for k in range(1, cols):
            ax = axes[row, k]
            if k - 1 >= len(cap.words):
                ax.axis("off")
                continue
            ax.imshow(s.image)
            ax.imshow(upsample_attention(cap.alphas[k - 1]), cmap="inferno", alpha=0.65,
                      extent=(-0.5, CANVAS - 0.5, CANVAS - 0.5, -0.5))
            title = cap.words[k - 1]
            if cap.betas is not None:
                title += f"\nβ={cap.betas[k - 1]:.2f}"
            if corr[k - 1] is not None:
                title += f" AC={corr[k - 1]:.2f}"
                y0, x0, y1, x1 = boxes[k - 1]
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", lw=0.8))
            ax.set_title(title, fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def load_captioner(name_or_dir: str, device: str = "cpu"):
    """A registry name, or a folder holding config.json + model.safetensors (e.g. an ablation)."""
    from pathlib import Path

    if Path(name_or_dir).is_dir():
        from attn_models.captioning.model import ShowAttendTell

        return ShowAttendTell.from_pretrained(name_or_dir).to(device).eval()
    from attn_models import load

    return load(name_or_dir, device=device)


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import time

    from attn_models.data.scenes import TEST_SIZE, fixed_test_set

    p = argparse.ArgumentParser(description="Evaluate a captioning model on the fixed Fashion-Scenes test set.")
    p.add_argument("name", help="registry name (e.g. sat-soft-fashion-scenes) or a weights folder")
    p.add_argument("--limit", type=int, default=TEST_SIZE, help=f"first N test scenes (default all {TEST_SIZE})")
    p.add_argument("--beam-size", type=int, default=3)
    p.add_argument("--max-len", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", help="also write the metrics to this file")
    p.add_argument("--figure", help="also draw per-word attention for the first --figure-scenes test scenes")
    p.add_argument("--figure-scenes", type=int, default=3)
    args = p.parse_args(argv)
    if not 1 <= args.limit <= TEST_SIZE:
        p.error(f"--limit must be in 1..{TEST_SIZE}")
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_captioner(args.name, args.device)
    t0 = time.time()
    metrics = evaluate(model, fixed_test_set(args.limit), args.beam_size, args.max_len)
    metrics.update(model=args.name, attention=model.attention_kind, seconds=round(time.time() - t0, 1))
    print(json.dumps(metrics, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=2)
    if args.figure:
        attention_figure(model, fixed_test_set(args.figure_scenes), args.figure, args.beam_size)


if __name__ == "__main__":
    main()
