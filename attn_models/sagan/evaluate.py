"""GAN metrics with the Fashion-MNIST classifier as the feature extractor.

    python -m attn_models.sagan.evaluate sagan-fashion-mnist --compare sagan-fashion-mnist-no-attention \
        --json weights/sagan-fashion-mnist/metrics.json --figures weights/sagan-fashion-mnist

For each model, on ``--per-class`` x 10 generated images (default 1,000 per class, 10,000 in all):
- FID against the Fashion-MNIST test set, on the classifier's penultimate features (torchmetrics'
  FrechetInceptionDistance with a custom feature extractor; not comparable to Inception-FID numbers);
- class consistency: share of images the classifier assigns to the class they were generated for;
- an Inception-Score-style score exp(E_x KL(p(y|x) || p(y))) with the same classifier (10 splits);
- for models with attention, how much the maps depend on the query (``query_dependence``: Jensen-Shannon
  divergence between two queries' maps in one image against one query's maps in two images).
The "real" row is the floor: 1,000 per class Fashion-MNIST *train* images scored the same way.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from attn_models import load
from attn_models.classifier.model import PenultimateFeatures
from attn_models.data import CLASS_NAMES, load_fashion_mnist
from attn_models.registry import load_name_or_folder
from attn_models.sagan.metrics import js_divergence, query_dependence  # noqa: F401 (part of this module's API)


def inception_style_score(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(mean KL(p(y|x) || p(y))) per split, as in Salimans et al. 2016; returns (mean, std)."""
    scores = []
    # Shuffle first: our sets are sorted by class, and a one-class split would score ~1 by construction.
    probs = probs[np.random.default_rng(0).permutation(len(probs))]
    for part in np.array_split(probs, splits):
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def generate_balanced(model, per_class: int, seed: int = 0, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """per_class images of every class; distinct latents (seed+i for chunk i). -> (N, H, W) uint8, (N,)."""
    labels = np.repeat(np.arange(model.num_classes), per_class)
    imgs = [model.generate(labels[i:i + batch].tolist(), seed=seed + i // batch, return_attention=False).images
            for i in range(0, len(labels), batch)]
    return np.concatenate(imgs)[..., 0], labels


def balanced_real(images: np.ndarray, labels: np.ndarray, per_class: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)])
    return images[idx], labels[idx]


class Scorer:
    """Holds the test-set FID statistics so every model is compared against the same reference."""

    def __init__(self, classifier, test_images: np.ndarray, batch: int = 500):
        self.clf, self.batch = classifier, batch
        self.fid = FrechetInceptionDistance(feature=PenultimateFeatures(classifier), reset_real_features=False)
        for i in range(0, len(test_images), batch):
            self.fid.update(torch.from_numpy(np.array(test_images[i:i + batch]))[:, None], real=True)

    @torch.inference_mode()
    def score(self, images: np.ndarray, labels: np.ndarray) -> dict:
        self.fid.reset()  # drops the fake statistics only
        probs = []
        for i in range(0, len(images), self.batch):
            x = torch.from_numpy(np.array(images[i:i + self.batch]))[:, None]  # (B, 1, H, W) uint8
            self.fid.update(x, real=False)
            probs.append(self.clf.predict_proba(x))
        probs = np.concatenate(probs)
        is_mean, is_std = inception_style_score(probs)
        per_class = [(probs[labels == c].argmax(1) == c).mean() for c in range(10)]
        return {"fid": float(self.fid.compute()), "class_consistency": float((probs.argmax(1) == labels).mean()),
                "class_consistency_per_class": {CLASS_NAMES[c]: round(float(v), 4) for c, v in enumerate(per_class)},
                "is_score": is_mean, "is_score_std": is_std, "n": int(len(images))}


ARM_METRICS = ("fid", "class_consistency", "is_score", "query_jsd_within_image", "query_jsd_across_images")


def parse_arms(specs: list[str]) -> dict[str, list[str]]:
    """["attention=a,b", "none=c,d"] -> {"attention": ["a", "b"], "none": ["c", "d"]}."""
    arms = {}
    for spec in specs:
        label, sep, members = spec.partition("=")
        if not sep or not label or not members:
            raise SystemExit(f"--arm {spec!r}: expected LABEL=DIR[,DIR...]")
        arms[label] = [m for m in members.split(",") if m]
    return arms


def summarise_arm(rows: list[dict], members: list[str]) -> dict:
    """Mean and standard deviation (over runs) of each headline metric of an ablation arm."""
    out: dict = {"members": members}
    for k in ARM_METRICS:
        values = [r[k] for r in rows if k in r]
        if len(values) == len(rows):
            out[k], out[k + "_std"] = float(np.mean(values)), float(np.std(values))
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="registry name of the GAN, or a weights folder (a run's export)")
    p.add_argument("--compare", nargs="*", default=[], help="more names or folders (e.g. the no-attention ablation)")
    p.add_argument("--arm", action="append", default=[], metavar="LABEL=DIR[,DIR...]",
                   help="an ablation arm: several runs (seeds) of one setting, summarised as mean +- std; repeat "
                        "for each arm, e.g. --arm attention=runs/sa-s0/export,runs/sa-s1/export")
    p.add_argument("--per-class", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--query-images", type=int, default=50, help="images per class for the query-dependence measure")
    p.add_argument("--figures", default=None, help="also draw the model-card figures of NAME into this folder")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    clf = load("fashion-mnist-classifier", device=args.device)
    test_x, _ = load_fashion_mnist("test")
    scorer = Scorer(clf, test_x)
    train_x, train_y = load_fashion_mnist("train")
    rows = {"real (Fashion-MNIST train)": scorer.score(*balanced_real(train_x, train_y, args.per_class, args.seed))}
    arms = parse_arms(args.arm)
    for name in dict.fromkeys([args.name, *args.compare, *(m for members in arms.values() for m in members)]):
        model = load_name_or_folder(name, "sagan", args.device)
        t = time.time()
        rows[name] = scorer.score(*generate_balanced(model, args.per_class, args.seed))
        rows[name]["gammas"] = model.gammas
        if model.vis_layer is not None:
            maps = model.generate(list(range(model.num_classes)) * args.query_images, seed=args.seed).attention
            qd = query_dependence(maps, seed=args.seed)
            rows[name].update({f"query_jsd_{k}": v for k, v in qd.items()})
        rows[name]["eval_s"] = round(time.time() - t, 1)
    print(f"{'images':40s} {'FID':>8s} {'class cons.':>12s} {'IS-style':>14s}")
    for k, r in rows.items():
        print(f"{k:40s} {r['fid']:8.3f} {r['class_consistency']:12.4f} {r['is_score']:8.3f}+-{r['is_score_std']:.3f}")
    result = {"command": "python -m attn_models.sagan.evaluate " + " ".join(argv if argv is not None else
                                                                       __import__("sys").argv[1:]),
              "fid_reference": "Fashion-MNIST test set (10,000), classifier penultimate features",
              "rows": rows, "arms": {label: summarise_arm([rows[m] for m in members], members)
                                     for label, members in arms.items()},
              "wall_s": round(time.time() - t0, 1)}
    for label, arm in result["arms"].items():
        print(f"arm {label} ({len(arm['members'])} runs): " + ", ".join(
            f"{k} {arm[k]:.4f} +- {arm[k + '_std']:.4f}" for k in ARM_METRICS if k in arm))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.figures:
        from attn_models.sagan.figures import draw_card_figures

        draw_card_figures(load_name_or_folder(args.name, "sagan", args.device), Path(args.figures))


if __name__ == "__main__":
    main()
