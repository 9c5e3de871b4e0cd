"""Write the model cards (README.md) of the shipped SAGAN weights from measured files only:
weights/<name>/metrics.json (python -m attn_models.sagan.evaluate ...) and the training log's final line
(checkpoints/<name>/log.jsonl, written by python -m attn_models.sagan.train).

    python -m attn_models.sagan.card
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN, ABLATION = "sagan-fashion-mnist", "sagan-fashion-mnist-no-attention"
TRAIN_CMD = {
    MAIN: "python -m attn_models.sagan.train --name sagan-fashion-mnist --time-budget-min 70 --threads 1",
    ABLATION: "python -m attn_models.sagan.train --name sagan-fashion-mnist-no-attention --attn-res none "
              "--time-budget-min 70 --threads 1",
}


def train_summary(name: str, log_name: str = "log.jsonl") -> dict:
    lines = (ROOT / "checkpoints" / name / log_name).read_text().splitlines()
    done = json.loads(lines[-1])
    last_log = next(json.loads(x) for x in reversed(lines) if '"gamma"' in x)
    return {"steps": done["done"], "wall_min": done["wall_min"], "gamma_d": last_log["gamma"]["d"]}


def fmt(gammas: dict) -> str:
    return ", ".join(f"{k}x{k}: {v:+.4f}" for k, v in gammas.items()) or "none"


def table(rows: dict) -> str:
    out = ["| images (10,000 = 1,000 per class) | FID (classifier features) | class consistency "
           "| IS-style score |", "|---|---|---|---|"]
    for k, r in rows.items():
        out.append(f"| {k} | {r['fid']:.2f} | {r['class_consistency']:.4f} | "
                   f"{r['is_score']:.3f} ± {r['is_score_std']:.3f} |")
    return "\n".join(out)


def per_class(rows: dict) -> str:
    names = list(next(iter(rows.values()))["class_consistency_per_class"])
    out = ["| images | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for k, r in rows.items():
        out.append(f"| {k} | " + " | ".join(f"{v:.2f}" for v in r["class_consistency_per_class"].values()) + " |")
    return "\n".join(out)


def main(argv=None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--reading", default="", help="the author's reading of the comparison (prose)")
    p.add_argument("--log-name", default="log.jsonl", help="training log in checkpoints/<name>/ to summarise")
    p.add_argument("--resumed-budget-min", type=float, default=None,
                   help="the runs were resumed with --resume --time-budget-min N after the 70-minute run")
    args = p.parse_args(argv)
    cmds = dict(TRAIN_CMD)
    if args.resumed_budget_min:
        for k in cmds:
            cmds[k] = (f"{cmds[k]}`, then the same command with `--resume --time-budget-min "
                       f"{args.resumed_budget_min:g}")
    reading = args.reading
    metrics = json.loads((ROOT / "weights" / MAIN / "metrics.json").read_text())
    rows = metrics["rows"]
    config = json.loads((ROOT / "weights" / MAIN / "config.json").read_text())
    s_main, s_abl = train_summary(MAIN, args.log_name), train_summary(ABLATION, args.log_name)
    m, a = rows[MAIN], rows[ABLATION]
    verdict = ("lower" if m["fid"] < a["fid"] else "higher")
    earlier = ""
    early_path = ROOT / "weights" / MAIN / "metrics_70min.json"
    if early_path.is_file():
        early = json.loads(early_path.read_text())
        s70m, s70a = train_summary(MAIN, "log_70min.jsonl"), train_summary(ABLATION, "log_70min.jsonl")
        earlier = f"""
The same two runs after their first 70 minutes ({s70m['steps']} and {s70a['steps']} iterations), evaluated
with the same command (`metrics_70min.json`):

{table(early["rows"])}
"""
    common = f"""
## Evaluation (measured)
`{metrics['command']}` (wall time {metrics['wall_s'] / 60:.1f} min on the shared 2-core CPU).
FID is computed by torchmetrics' `FrechetInceptionDistance` with the penultimate (256-d) features of
`fashion-mnist-classifier` against the 10,000 Fashion-MNIST **test** images: it is *not* comparable with
Inception-FID numbers in papers. Class consistency = share of generated images the classifier assigns to the
requested class. IS-style score = exp(E KL(p(y|x) || p(y))) with the same classifier (10 splits, mean ± std;
10 is the maximum). The *real* row is the floor: 10,000 Fashion-MNIST **train** images (1,000 per class).

{table(rows)}

Class consistency per class:

{per_class(rows)}
{earlier}"""
    card = f"""---
library_name: pytorch
tags: [gan, sagan, self-attention, fashion-mnist]
datasets: [fashion_mnist]
---
# sagan-fashion-mnist

Class-conditional **Self-Attention GAN** (Zhang et al. 2019) on 32x32 Fashion-MNIST (28x28 zero-padded by 2),
the model behind the *Self-attention GAN* tab. This folder holds the **EMA generator** (BatchNorm statistics
and spectral-norm vectors re-estimated for the averaged weights) plus the sampling API:
`load("sagan-fashion-mnist").generate(labels, seed)`.

## Architecture (as in the paper and the authors' code)
- G: z (128) → SN-linear → 4x4x{4 * config['ch']} → 3 residual up-blocks (conditional BN, SN 3x3 convs) with
  widths {4 * config['ch']}, {2 * config['ch']}, {config['ch']} → BN-ReLU-SN conv-tanh. **Self-attention after the
  16x16 block** (on {2 * config['ch']} channels).
- D: residual down-blocks (SN), self-attention at 16x16, global sum pooling, **projection** head for the class.
- Self-attention block, *official-code variant*: f, g (C/8) and h (C/2) 1x1 SN convs, keys/values 2x2 max-pooled
  (16x16 = 256 queries over 8x8 = 64 keys), softmax over keys, 1x1 SN output conv, y = γ·o + x with γ initialised
  to 0. (`attn_variant="paper"` switches to C/8 everywhere and no pooling.)
- Hinge loss, one D step per G step, TTUR: Adam lr G 1e-4, D 4e-4, betas (0, 0.9); EMA of G (decay 0.999 with
  warm-up) for sampling. Spectral norm is `torch.nn.utils.parametrizations.spectral_norm`.

## Deviations (and why)
- Size: base width {config['ch']} (the paper's ImageNet nets are far wider), batch 32,
  {s_main['wall_min']:.0f} minutes on one thread of a shared 2-core CPU: **{s_main['steps']} iterations**
  ({s_main['steps'] * 32:,} real images seen, {s_main['steps'] * 32 / 60000:.2f} epochs).
  The paper trains ~1M iterations at batch 256. These numbers describe a very short run.
- Per-class BN gains/biases are plain embeddings (as in the official code), not spectrally normalised.

## Training
`{cmds[MAIN]}`\n→ {s_main['steps']} iterations in {s_main['wall_min']:.1f} min (wall, shared CPU);
checkpoints and sample grids in `checkpoints/sagan-fashion-mnist/`.
Final γ (by feature-map size): G {fmt(m['gammas'])}, D {fmt(s_main['gamma_d'])}.

The **ablation** `sagan-fashion-mnist-no-attention` (shipped next to this folder) is the same network with the
attention blocks removed from G and D, trained at the same time with the same budget:
`{cmds[ABLATION]}` → {s_abl['steps']} iterations in {s_abl['wall_min']:.1f} min (no attention makes each step
cheaper, so it got more steps for the same wall time).
{common}
## Does self-attention help here?
With attention the FID is **{m['fid']:.2f}** vs **{a['fid']:.2f}** without ({verdict} with attention), class
consistency **{m['class_consistency']:.3f}** vs **{a['class_consistency']:.3f}** (bar: ≥ 0.90).
{reading}

## Pictures
- `samples.png`: one row per class, one column per latent (seed 0).
- `attention.png`: four query points (cyan rings) on generated images and the softmax weights of each query over the
  8x8 key grid, upsampled and overlaid (as in the paper's Fig. 1).
- `gamma_off.png`: the same latents with γ forced to 0 at inference (`generate(..., attention_off=True)`).

![samples](samples.png)
![attention](attention.png)
![gamma off](gamma_off.png)
"""
    (ROOT / "weights" / MAIN / "README.md").write_text(card)
    abl = f"""---
library_name: pytorch
tags: [gan, fashion-mnist, ablation]
datasets: [fashion_mnist]
---
# sagan-fashion-mnist-no-attention

Ablation of `sagan-fashion-mnist`: identical generator/discriminator, loss, optimiser, batch and wall-clock budget,
**with the self-attention blocks removed** (`--attn-res none`). Shipped so the comparison in the SAGAN card can be
re-run: `python -m attn_models.sagan.evaluate sagan-fashion-mnist --compare sagan-fashion-mnist-no-attention`.

## Training
`{cmds[ABLATION]}` → {s_abl['steps']} iterations in {s_abl['wall_min']:.1f} min (wall, shared 2-core CPU).
{common}
![samples](samples.png)
"""
    (ROOT / "weights" / ABLATION / "README.md").write_text(abl)
    print("wrote", MAIN, ABLATION)


if __name__ == "__main__":
    main()
