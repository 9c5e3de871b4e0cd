"""Stage 2 of Show, Attend and Tell (Xu et al. 2015): train the attention decoder, soft or hard, on a frozen
encoder, through the training scaffold (``attn_models.training``).

Stage 1, ``attn_models.captioning.pretrain``, pretrains the encoder on a tag task (the paper froze an ImageNet
VGG; see that module). This stage loads it (``--encoder-from``), freezes it, as the paper does (eval-mode
BatchNorm, no gradients), and trains the decoder: soft attention with the doubly stochastic penalty
(``--ds-lambda``), or hard attention with REINFORCE (moving-average baseline, checkpointed with the run, so
``--resume`` is exact), an entropy bonus and the expected context with probability ``--expect-prob``.

The v4 models, from the encoder of the two ``pretrain`` runs in its module docstring
(``runs/sat-encoder-v4/export``); the first run encodes 16,000 training scenes once and caches them:

    python -m attn_models.captioning.train --attention soft --ds-lambda 0 \\
        --encoder-from runs/sat-encoder-v4/export --encoder-channels 128 --encoder-widths 32 64 96 \\
        --feature-pool 16000 --pool-cache runs/pool-v4-16000.safetensors --lr 2e-3 --max-steps 13641 \\
        --eval-every 1000 --eval-scenes 100 --seed 0 --export weights/sat-soft-fashion-scenes
    python -m attn_models.captioning.train --attention hard --reward to_go --reward-discount 0.5 \\
        --encoder-from runs/sat-encoder-v4/export --encoder-channels 128 --encoder-widths 32 64 96 \\
        --feature-pool 16000 --pool-cache runs/pool-v4-16000.safetensors --lr 2e-3 --max-steps 11498 \\
        --eval-every 1000 --eval-scenes 100 --seed 0 --export weights/sat-hard-fashion-scenes

(those are the v4 models; docs/model-cards.md has the commands of the shipped ones: the shipped soft model adds a
second stage, ``--init-from`` a first-stage export with ``--train-only`` naming the layers that go on training on a
larger pool, the attention MLP kept as the first stage learned it). Then
``python -m attn_models.captioning.evaluate weights/sat-soft-fashion-scenes --json metrics.json``.
On photos (Karpathy's split JSON of COCO / Flickr8k / Flickr30k), with an ImageNet encoder instead:

    python -m attn_models.captioning.train --attention soft --data karpathy --karpathy-json dataset_flickr8k.json \\
        --image-root Flicker8k_Dataset --encoder vgg16 --image-size 224 --imagenet

The run is named after the attention and the data (``runs/sat-soft-fashion-scenes`` unless ``--run-dir``).
Training data: fresh scenes every step (scene i depends only on --seed and i), or batches drawn by step from
the ``--feature-pool`` scenes encoded once (the encoder is frozen, so this only saves time). Validation
(logged): object recall and attention correctness, greedy, on ``--eval-scenes`` scenes of *training* images
(seed 777, which the training stream never uses at those indices); the test set is only for ``evaluate``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from attn_models import training
from attn_models.captioning.encoder import TorchvisionEncoder
from attn_models.captioning.metrics import attention_correctness
from attn_models.captioning.model import ATTENTIONS, HARD_CONTEXTS, ReinforceState, ShowAttendTell
from attn_models.captioning.pretrain import encoder_file, split_items
from attn_models.data.fashion_mnist import load_fashion_mnist
from attn_models.data.scenes import VOCAB, Scene, fashion_scenes, make_scene, object_recall, scene_rng

VAL_SEED = 777  # validation scenes: train images, a seed the training stream never uses at these indices
DATASETS = ("fashion-scenes", "karpathy")
# --train-only: the parameters a fine-tuning stage trains (name prefixes); None = all but the frozen encoder.
# "output": the deep output layer p(y_t) ∝ exp(L_o tanh(E y_{t-1} + L_h h_t + L_z z_t)) minus E, which the LSTM's
# input shares; "lstm-output": the LSTM too; "all-but-attention": every decoder layer but the attention MLP
# (W_a, W_h, w). Only "all" trains the attention MLP.
OUTPUT_LAYER = ("decoder.out_h.", "decoder.out_z.", "decoder.out_o.")
TRAIN_ONLY = {"all": None, "output": OUTPUT_LAYER, "lstm-output": (*OUTPUT_LAYER, "decoder.lstm."),
              "all-but-attention": (*OUTPUT_LAYER, "decoder.lstm.", "decoder.embed.", "decoder.init_h.",
                                    "decoder.init_c.", "decoder.f_beta.")}
GRAD_CLIP = 5.0  # gradient-norm clip, as in the paper's code
# task state: the REINFORCE moving-average baseline, a scalar (--reward sentence) or one per position (to_go)
BASELINE_KEYS = {"sentence": "reinforce_baseline_sentence", "to_go": "reinforce_baseline_to_go"}


def images_tensor(scenes) -> torch.Tensor:
    return torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).float() / 255.0


def train_scenes(args, images, labels, step: int, rank: int = 0, world: int = 1):
    first = (step * world + rank) * args.batch_size
    return [make_scene(scene_rng("train", args.seed, i), images, labels)
            for i in range(first, first + args.batch_size)]


def validation_scenes(n: int, held_out_items: bool = False) -> list[Scene]:
    """The first ``n`` validation scenes (training images, ``VAL_SEED``); ``held_out_items``: drawn only from the
    training items the encoder pretraining holds out (``pretrain.split_items``)."""
    items = split_items(len(load_fashion_mnist("train")[0]))[1] if held_out_items else None
    return fashion_scenes("train", n, VAL_SEED, items=items)


def build_model(args, vocab: list[str] | None) -> ShowAttendTell:
    """The model the flags describe, its encoder from --encoder-from (or ImageNet) and frozen."""
    if vocab is None:  # Fashion-Scenes: write the vocabulary into config.json so the weights stand alone
        vocab = list(VOCAB)
    model = ShowAttendTell(vocab=vocab, attention=args.attention, encoder=args.encoder,
                           encoder_channels=args.encoder_channels, encoder_widths=tuple(args.encoder_widths),
                           image_size=args.image_size,
                           embed_dim=args.embed_dim, hidden_dim=args.hidden_dim, attn_dim=args.attn_dim,
                           dropout=args.dropout, hard_context=args.hard_context,
                           encoder_flip_average=args.encoder_flip_average)
    if args.encoder_from:
        model.encoder.load_state_dict(load_file(str(encoder_file(args.encoder_from))), strict=True)
    elif args.imagenet and isinstance(model.encoder, TorchvisionEncoder):
        model.encoder.load_imagenet_weights()
    # frozen encoder, as in the paper: eval-mode BatchNorm, no gradients
    for p_ in model.encoder.parameters():
        p_.requires_grad_(False)
    return model


def freeze_all_but(model: ShowAttendTell, prefixes: tuple[str, ...]) -> None:
    """Leave only the parameters named ``prefixes`` trainable (--train-only)."""
    for name, p_ in model.named_parameters():
        p_.requires_grad_(name.startswith(prefixes))
    trained = {name.split(".")[1] for name, p_ in model.named_parameters() if p_.requires_grad}
    if trained != {p.split(".")[1] for p in prefixes}:
        raise RuntimeError(f"--train-only names {prefixes}, found {sorted(trained)}: the decoder's layers changed")


def set_train_mode(model: ShowAttendTell) -> None:
    model.train()
    model.encoder.eval()


@torch.no_grad()
def validate(model: ShowAttendTell, scenes) -> dict[str, float]:
    from PIL import Image

    model.eval()
    named = total = 0
    corr: list[float] = []
    for s in scenes:
        cap = model.caption(Image.fromarray(s.image), beam_size=1, max_len=20)
        n, t = object_recall(s, cap.words)
        named, total = named + n, total + t
        corr += [c for c in attention_correctness(cap.alphas, cap.words, s) if c is not None]
    set_train_mode(model)
    return {"val_recall": named / max(1, total), "val_att_correctness": float(np.mean(corr)) if corr else 0.0}


def pool_key(model: ShowAttendTell, args) -> dict[str, str]:
    """What an encoded pool depends on: its scenes (--seed, --feature-pool) and the frozen encoder's weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    key = {"seed": str(args.seed), "scenes": str(args.feature_pool), "encoder_sha256": digest.hexdigest()[:16]}
    if model.encoder_flip_average:  # other features of the same scenes (pools written before the flag lack the key)
        key["encoder_flip_average"] = "true"
    return key


class ScenePool:
    """Training scenes encoded once by the frozen encoder; batches are drawn from them by seed+step."""

    def __init__(self, model: ShowAttendTell, args, device):
        scenes = fashion_scenes("train", args.feature_pool, args.seed)
        self.captions = [s.captions for s in scenes]
        cache = Path(args.pool_cache) if args.pool_cache else None
        key = pool_key(model, args)
        if cache is not None and cache.exists():  # written by an earlier run with the same scenes and encoder
            with safe_open(str(cache), "pt") as f:
                found = f.metadata() or {}
                # The captions come from --seed and --feature-pool, the features from the file: a cache of other
                # scenes or another encoder would pair each caption with another image's features, silently.
                if found != key:
                    raise SystemExit(f"{cache} was encoded for {found or 'unrecorded scenes and encoder'}, this run "
                                     f"needs {key}: delete it or name another --pool-cache")
                self.features = f.get_tensor("features")
            return
        chunks = []
        with torch.no_grad():
            for i in tqdm(range(0, len(scenes), 256), desc="encoding pool", mininterval=10):
                chunks.append(model.encode(images_tensor(scenes[i:i + 256]).to(device)).half().cpu())
        self.features = torch.cat(chunks)  # (N, L, D) float16
        if cache is not None:
            tmp = cache.with_suffix(".tmp")
            save_file({"features": self.features}, str(tmp), metadata=key)
            tmp.replace(cache)

    def batch(self, rng: np.random.Generator, size: int):
        idx = rng.integers(0, len(self.captions), size=size)
        return self.features[idx].float(), [self.captions[i] for i in idx]


class DecoderTask(training.TrainTask):
    description = __doc__

    name = "sat-soft-fashion-scenes"

    def __init__(self):
        super().__init__()
        self.rstate = ReinforceState()
        self._pool: ScenePool | None = None

    def run_name(self, args):
        return f"sat-{args.attention}-{args.data}"

    def add_args(self, p):
        g = p.add_argument_group("Show, Attend and Tell decoder")
        g.add_argument("--attention", choices=ATTENTIONS, default="soft")
        g.add_argument("--data", choices=DATASETS, default="fashion-scenes")
        g.add_argument("--karpathy-json", help="dataset_coco.json / dataset_flickr8k.json (with --data karpathy)")
        g.add_argument("--image-root", help="folder the JSON's image paths are relative to")
        g.add_argument("--min-count", type=int, default=5, help="karpathy: vocabulary min word count")
        g.add_argument("--max-words", type=int, default=20)
        g.add_argument("--encoder", default="small", help="small | vgg16 | resnet18/34/50/101")
        g.add_argument("--encoder-channels", type=int, default=96)
        g.add_argument("--encoder-widths", type=int, nargs=3, default=[24, 48, 64], metavar="W",
                       help="small encoder: widths of its first three conv blocks")
        g.add_argument("--encoder-from", help="the frozen encoder: a pretrain export folder or its "
                       "encoder.safetensors (attn_models.captioning.pretrain)")
        g.add_argument("--imagenet", action="store_true", help="torchvision encoder: load ImageNet weights (online)")
        g.add_argument("--encoder-flip-average", action="store_true",
                       help="annotations: the mean of the encoder's grid on the image and (mirrored back) on the "
                            "image mirrored left-right (test-time augmentation of the frozen encoder; model.py)")
        g.add_argument("--image-size", type=int, default=None, help="default 96 (scenes) or 224 (photos)")
        g.add_argument("--embed-dim", type=int, default=64)
        g.add_argument("--hidden-dim", type=int, default=256)
        g.add_argument("--attn-dim", type=int, default=128)
        g.add_argument("--dropout", type=float, default=0.3)
        g.add_argument("--ds-lambda", type=float, default=0.0, help="soft: doubly stochastic penalty weight")
        g.add_argument("--reinforce-weight", type=float, default=1.0)
        g.add_argument("--entropy-weight", type=float, default=0.01)
        g.add_argument("--reward", choices=["sentence", "to_go"], default="sentence",
                       help="hard: REINFORCE reward, the paper's whole-sentence log-likelihood or the reward to go")
        g.add_argument("--reward-discount", type=float, default=1.0,
                       help="hard, --reward to_go: weight of word t' in the reward of location t is discount^(t'-t)")
        g.add_argument("--expect-prob", type=float, default=0.5, help="hard: P(use expected context)")
        g.add_argument("--hard-context", choices=HARD_CONTEXTS, default="argmax",
                       help="hard: the context at test time (validation, and the export's config.json): the most "
                            "likely cell, or the expected context as the authors' code decodes")
        g.add_argument("--targets", choices=["canonical", "all"], default="canonical",
                       help="fashion-scenes: train on the reading-order caption, or on a random reference")
        g.add_argument("--feature-pool", type=int, default=0,
                       help="fashion-scenes: encode this many training scenes once and draw batches from them "
                            "(the encoder is frozen, so this only saves time); 0 = fresh scenes every step")
        g.add_argument("--pool-cache", help="safetensors file to reuse the encoded pool between runs "
                       "(same --encoder-from, --seed and --feature-pool)")
        g.add_argument("--pool-only", action="store_true", help="build --pool-cache and exit")
        g.add_argument("--eval-scenes", type=int, default=150, help="validation scenes (training images)")
        g.add_argument("--train-only", choices=list(TRAIN_ONLY), default="all",
                       help="fine-tune part of the --init-from decoder: 'output', the deep output layer (L_h, L_z, "
                            "L_o) alone, so the attention maps under teacher forcing do not change; 'lstm-output', "
                            "the LSTM too (the maps move only as far as the LSTM's state does); 'all-but-attention', "
                            "every layer but the attention MLP (W_a, W_h, w), which no part but 'all' trains")
        p.set_defaults(batch_size=64, lr=1e-3, warmup_steps=200, eval_every=500, checkpoint_every_min=4.0)

    # ---- setup ---------------------------------------------------------------------------------------
    def setup(self):
        a = self.args
        scenes = a.data == "fashion-scenes"
        if a.image_size is None:
            a.image_size = 96 if scenes else 224
        if not scenes and not (a.karpathy_json and a.image_root):
            raise SystemExit("--data karpathy needs --karpathy-json and --image-root")
        if a.pool_only and not (scenes and a.feature_pool > 0 and a.pool_cache):
            raise SystemExit("--pool-only needs --feature-pool N and --pool-cache FILE (fashion-scenes)")
        vocab = None
        if scenes:
            self.images, self.labels = load_fashion_mnist("train")
            self.examples_per_epoch = a.feature_pool or None
        else:
            from attn_models.data.captions import KarpathyCaptions, build_vocab

            self.ds = KarpathyCaptions(a.karpathy_json, a.image_root, "train", a.image_size, a.max_words)
            vocab = build_vocab(self.ds.captions(), a.min_count)
            self.examples_per_epoch = len(self.ds)
        model = build_model(a, vocab)
        if TRAIN_ONLY[a.train_only] is not None:
            if not (a.init_from or a.resume):
                raise SystemExit(f"--train-only {a.train_only} fine-tunes a trained decoder: give --init-from WEIGHTS")
            freeze_all_but(model, TRAIN_ONLY[a.train_only])
        set_train_mode(model)
        opt = torch.optim.Adam([p_ for p_ in model.parameters() if p_.requires_grad], lr=a.lr)
        self.model, opt = self.acc.prepare(model, opt)
        self.optimizers, self.export_model = [opt], self.model
        self.raw: ShowAttendTell = self.acc.unwrap_model(self.model)
        self.params = [p_ for p_ in self.raw.parameters() if p_.requires_grad]
        self.val = None
        if a.pool_only:  # the pool is encoded by the final encoder: apply --init-from first
            if a.init_from:
                self.init_from(Path(a.init_from))
            print(f"pool of {len(self.pool.captions)} scenes in {a.pool_cache}")
            raise SystemExit(0)

    @property
    def pool(self) -> ScenePool | None:
        """The encoded scene pool, built at first use: after --init-from / --resume loaded the encoder.
        With several processes and a --pool-cache to write, the main process encodes it and the others read it."""
        a = self.args
        if self._pool is None and a.data == "fashion-scenes" and a.feature_pool > 0:
            if a.pool_cache and not Path(a.pool_cache).exists() and self.world > 1:
                if self.acc.is_main_process:
                    self._pool = ScenePool(self.raw, a, self.device)
                self.acc.wait_for_everyone()
            if self._pool is None:
                self._pool = ScenePool(self.raw, a, self.device)
        return self._pool

    # ---- training --------------------------------------------------------------------------------------
    def batch(self, step: int, rng: np.random.Generator):
        """(images or None, annotations or None, reference captions per image) of this process's share."""
        a = self.args
        if self.pool is not None:
            feats, refs = self.pool.batch(rng, a.batch_size)
            return None, feats.to(self.device), refs
        if a.data == "fashion-scenes":
            scenes = train_scenes(a, self.images, self.labels, step, self.rank, self.world)
            return images_tensor(scenes).to(self.device), None, [s.captions for s in scenes]
        from attn_models.data.captions import collate

        idx = training.epoch_indices(a.seed, step, a.batch_size, len(self.ds), self.rank, self.world)
        x, refs = collate([self.ds[int(i)] for i in idx])
        return x.to(self.device), None, refs

    def train_step(self, step, rng):
        a = self.args
        # hard attention's sampled locations, drawn where the model runs (a CUDA multinomial takes a CUDA generator)
        gen = torch.Generator(device=self.device).manual_seed(int(rng.integers(2**62)))
        x, feats, refs = self.batch(step, rng)
        if a.data == "fashion-scenes" and a.targets == "canonical":
            chosen = [r[0] for r in refs]  # the reading-order caption (scenes.py says why)
        else:
            chosen = [r[int(rng.integers(len(r)))] for r in refs]  # one reference per image per step
        tokens = self.raw.tokenize(chosen, a.max_words).to(self.device)
        loss, stats = self.model(tokens, images=x, annotations=feats, ds_lambda=a.ds_lambda, reinforce=self.rstate,
                                 reinforce_weight=a.reinforce_weight, entropy_weight=a.entropy_weight,
                                 expect_prob=a.expect_prob, reward=a.reward, reward_discount=a.reward_discount,
                                 generator=gen)
        self.optimize(loss, params=self.params, clip=GRAD_CLIP)
        if a.attention == "hard" and self.world > 1:
            self._share_baseline()
        return stats

    def _share_baseline(self) -> None:
        """Average the processes' REINFORCE baselines (each moved with its own share of the batch), so every
        process holds the baseline of the whole batch and the main process's checkpoint is everyone's state."""
        b = self.rstate.baseline
        vals = [] if b is None else [b] if isinstance(b, float) else list(b)
        n = int(self.acc.gather(torch.tensor([len(vals)], device=self.device)).max())
        if n == 0:
            return
        mine = torch.full((1, n), float("nan"), dtype=torch.float64, device=self.device)
        mine[0, :len(vals)] = torch.tensor(vals, dtype=torch.float64)
        mean = self.acc.gather(mine).nanmean(0).cpu()  # a position missing on one process: the others' mean
        self.rstate.baseline = float(mean[0]) if self.args.reward == "sentence" else mean.tolist()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        b = self.rstate.baseline  # None until the first hard step that sampled locations
        if b is None:
            return {}
        if isinstance(b, list):
            return {BASELINE_KEYS["to_go"]: torch.tensor(b, dtype=torch.float64)}
        return {BASELINE_KEYS["sentence"]: torch.tensor(float(b), dtype=torch.float64)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        rest = dict(tensors)
        sentence, to_go = rest.pop(BASELINE_KEYS["sentence"], None), rest.pop(BASELINE_KEYS["to_go"], None)
        self.rstate.baseline = float(sentence) if sentence is not None else \
            to_go.cpu().tolist() if to_go is not None else None
        super().load_state_tensors(rest)

    def evaluate(self, step):
        if self.args.data != "fashion-scenes":
            return {}
        if self.val is None:  # drawn once, on the process that validates
            self.val = validation_scenes(self.args.eval_scenes)
        return validate(self.raw, self.val)


def main(argv: list[str] | None = None) -> dict:
    return training.run(DecoderTask(), argv)


if __name__ == "__main__":
    main()
