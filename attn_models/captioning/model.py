"""Show, Attend and Tell (Xu et al. 2015): encoder + attention decoder + beam search, one Hub-mixin module.

Deviation from the paper, on purpose: two fixed coordinate channels (y, x in [-1, 1]) are appended
to every annotation vector. Fashion-Scenes captions say "left of" / "above", and a CNN's features
only weakly encode where they are; the paper's captions rarely depend on absolute layout.

``encoder_flip_average`` (off unless a config sets it): the annotations are the mean of the encoder's grid on the
image and, mirrored back, on the image mirrored left-right (the encoder was pretrained with random flips, so both
are its features of the same cells). Test-time augmentation of the frozen encoder, not in the paper: it averages
two views' evidence per cell, which reads the item classes better on validation (``docs/model-cards.md`` has
the numbers, and the smaller gain on the test set).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from PIL import Image
from torch import nn

from attn_models.captioning.beam import Hypothesis, beam_search, beam_search_all
from attn_models.captioning.decoder import ARGMAX, EXPECT, SOFT, AttentionDecoder
from attn_models.captioning.encoder import both_views, build_encoder
from attn_models.data.scenes import VOCAB

ATTENTIONS = ("soft", "hard")
# What a hard-attention decoder attends to at test time: the most likely cell (argmax of α, a one-hot map), or
# the expected context Σ_i α_i a_i, as the authors' arctic-captions code decodes a hard model by default
# (generate_caps.py without -sampling). Training is the same for both; the choice is made on validation.
HARD_CONTEXTS = (ARGMAX, EXPECT)
MAX_BEAM, MAX_LEN = 50, 100


@dataclass
class Caption:
    words: list[str]
    alphas: np.ndarray  # (len(words), gh, gw), each map sums to 1
    betas: np.ndarray | None  # (len(words),)


@dataclass
class BeamCaption(Caption):
    """One hypothesis of the n-best list: a Caption with its beam-search scores."""
    log_prob: float  # log p(words, <end> | image): the sum over the emitted tokens, <end> included if emitted
    score: float  # log_prob per emitted token: what the beam ranks by (see beam.py)
    ended: bool  # False when max_len cut it before <end>


class ShowAttendTell(nn.Module, PyTorchModelHubMixin,
                     library_name="attn-models", tags=["image-captioning", "attention", "show-attend-tell"]):
    def __init__(self, vocab: list[str] | None = None, attention: str = "soft", encoder: str = "small",
                 encoder_channels: int = 96, image_size: int = 96, embed_dim: int = 64,
                 hidden_dim: int = 256, attn_dim: int = 128, dropout: float = 0.3,
                 coord_channels: bool = True, encoder_widths: tuple[int, int, int] = (24, 48, 64),
                 hard_context: str = ARGMAX, encoder_flip_average: bool = False):
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if hard_context not in HARD_CONTEXTS:
            raise ValueError(f"hard_context must be one of {HARD_CONTEXTS}, got {hard_context!r}")
        self.vocab = list(vocab) if vocab is not None else list(VOCAB)
        for special in ("<pad>", "<start>", "<end>"):
            if special not in self.vocab:
                raise ValueError(f"vocab must contain {special}")
        self.word_to_id = {w: i for i, w in enumerate(self.vocab)}
        self.pad_id, self.start_id, self.end_id = (self.word_to_id[s] for s in ("<pad>", "<start>", "<end>"))
        # never generated: padding, <start>, and <unk> (an unknown word is no caption)
        self.banned_ids = [self.word_to_id[s] for s in ("<pad>", "<start>", "<unk>") if s in self.word_to_id]
        self.attention = attention
        self.hard_context = hard_context
        self.image_size = image_size
        self.coord_channels = coord_channels
        self.encoder_flip_average = encoder_flip_average
        self.encoder = build_encoder(encoder, encoder_channels, encoder_widths)
        annot_dim = self.encoder.out_channels + (2 if coord_channels else 0)
        self.decoder = AttentionDecoder(len(self.vocab), annot_dim, embed_dim, hidden_dim, attn_dim, dropout)
        self._grid_hw: tuple[int, int] | None = None

    # ---- properties the demo uses -------------------------------------------------------------
    @property
    def attention_kind(self) -> str:
        return self.attention

    @property
    def grid_hw(self) -> tuple[int, int]:
        if self._grid_hw is None:
            p = next(self.parameters())
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                g = self.encoder(torch.zeros(1, 3, self.image_size, self.image_size, device=p.device))
            self.encoder.train(was_training)
            self._grid_hw = (int(g.shape[2]), int(g.shape[3]))
        return self._grid_hw

    # ---- encoding -------------------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S) float in [0, 1] -> annotations a (B, L, D)."""
        g = both_views(self.encoder, images) if self.encoder_flip_average else self.encoder(images)  # (B, C, gh, gw)
        b, _, gh, gw = g.shape
        if self._grid_hw is None:
            self._grid_hw = (gh, gw)
        if self.coord_channels:
            ys = torch.linspace(-1, 1, gh, device=g.device, dtype=g.dtype)
            xs = torch.linspace(-1, 1, gw, device=g.device, dtype=g.dtype)
            yy, xx = torch.meshgrid(ys, xs, indexing="ij")
            g = torch.cat([g, torch.stack([yy, xx])[None].expand(b, -1, -1, -1)], 1)
        return g.flatten(2).transpose(1, 2)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Any PIL image -> (1, 3, S, S) float in [0, 1] on the model's device (whole image, resized)."""
        if not isinstance(image, Image.Image):
            raise ValueError(f"caption() needs a PIL.Image.Image, got {type(image).__name__}")
        if image.width < 1 or image.height < 1:
            raise ValueError("the image is empty")
        if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit grey: rescale, not clip
            arr = np.asarray(image, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            arr = (arr - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(arr)
            image = Image.fromarray(arr.astype(np.uint8), "L")
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")  # transparent pixels -> black, the scenes' background
            bg = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            image = Image.alpha_composite(bg, rgba)
        image = image.convert("RGB")
        if image.size != (self.image_size, self.image_size):
            image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
        return x[None].to(next(self.parameters()).device)

    # ---- captioning -----------------------------------------------------------------------------
    @staticmethod
    def _check_decoding_args(beam_size, max_len) -> None:
        if isinstance(beam_size, bool) or not isinstance(beam_size, (int, np.integer)) \
                or not 1 <= beam_size <= MAX_BEAM:
            raise ValueError(f"beam_size must be an integer in 1..{MAX_BEAM}, got {beam_size!r}")
        if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or not 1 <= max_len <= MAX_LEN:
            raise ValueError(f"max_len must be an integer in 1..{MAX_LEN}, got {max_len!r}")

    @torch.no_grad()
    def caption(self, image: Image.Image, beam_size: int = 3, max_len: int = 20) -> Caption:
        """Beam-search caption of one image, with each word's attention map and gate value."""
        self._check_decoding_args(beam_size, max_len)
        x = self.preprocess(image)
        was_training = self.training
        self.eval()
        try:
            return self.caption_annotations(self.encode(x), beam_size, max_len)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def caption_annotations(self, a: torch.Tensor, beam_size: int = 3, max_len: int = 20) -> Caption:
        """Like ``caption`` from annotations (1, L, D) already encoded (lets evaluation batch the encoder)."""
        self._check_decoding_args(beam_size, max_len)
        hyp = beam_search(self.decoder, a, self.start_id, self.end_id, self.banned_ids,
                          int(beam_size), int(max_len), self.test_mode)
        return Caption(*self._words_maps(hyp))

    @torch.no_grad()
    def caption_beams(self, image: Image.Image, beam_size: int = 3, max_len: int = 20) -> list[BeamCaption]:
        """Every hypothesis the beam search finished (at most ``beam_size``), best first: the first one's words,
        alphas and betas are ``caption()``'s for the same arguments."""
        self._check_decoding_args(beam_size, max_len)
        x = self.preprocess(image)
        was_training = self.training
        self.eval()
        try:
            hyps = beam_search_all(self.decoder, self.encode(x), self.start_id, self.end_id, self.banned_ids,
                                   int(beam_size), int(max_len), self.test_mode)
        finally:
            self.train(was_training)
        return [BeamCaption(*self._words_maps(h), log_prob=h.log_prob, score=h.score, ended=h.ended) for h in hyps]

    @property
    def test_mode(self) -> str:
        """How the decoder picks its context at test time: the expectation (soft); for hard attention
        ``hard_context``, the most likely cell (argmax instead of sampling s_t) or the expectation. Either way a
        caption is a function of the image."""
        return SOFT if self.attention == "soft" else self.hard_context

    def _words_maps(self, hyp: Hypothesis) -> tuple[list[str], np.ndarray, np.ndarray]:
        gh, gw = self.grid_hw
        alphas = hyp.alphas.double().cpu().numpy().reshape(len(hyp.tokens), gh, gw)
        alphas = alphas / alphas.sum(axis=(1, 2), keepdims=True)  # exactly 1 despite float32 rounding
        return [self.vocab[i] for i in hyp.tokens], alphas.astype(np.float32), hyp.betas.float().cpu().numpy()

    def forward(self, tokens: torch.Tensor, images: torch.Tensor | None = None,
                annotations: torch.Tensor | None = None, **loss_kwargs) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss (see ``caption_loss``) from images, or from annotations encoded beforehand.
        The encoder runs without gradients: it is pretrained and frozen, as in the paper."""
        if annotations is None:
            if images is None:
                raise ValueError("forward() needs images or annotations")
            with torch.no_grad():
                annotations = self.encode(images)
        return caption_loss(self, annotations, tokens, **loss_kwargs)

    # ---- tokens -------------------------------------------------------------------------------
    def tokenize(self, captions: list[list[str]], max_words: int | None = None) -> torch.Tensor:
        """Word lists -> (B, T+2) ids: <start> words <end>, padded with <pad>."""
        unk = self.word_to_id.get("<unk>", self.pad_id)
        rows = [[self.start_id] + [self.word_to_id.get(w, unk) for w in c[:max_words]] + [self.end_id]
                for c in captions]
        out = torch.full((len(rows), max(len(r) for r in rows)), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, :len(r)] = torch.tensor(r)
        return out


@dataclass
class ReinforceState:
    """The moving-average baseline b_k = 0.9 b_{k-1} + 0.1 log p(y | s~_k, a) of the paper (Sec. 4.1).

    With ``reward="to_go"`` the baseline is one moving average per word position t of the reward
    to go (see ``caption_loss``), kept as a list."""
    baseline: float | list[float] | None = None
    decay: float = 0.9


def caption_loss(model: ShowAttendTell, a: torch.Tensor, tokens: torch.Tensor, ds_lambda: float = 0.0,
                 reinforce: ReinforceState | None = None, reinforce_weight: float = 1.0,
                 entropy_weight: float = 0.01, expect_prob: float = 0.5, reward: str = "sentence",
                 reward_discount: float = 1.0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Training objective, per caption summed over words and averaged over the batch.

    soft: -log p(y|a) + ds_lambda * sum_i (1 - sum_t alpha_ti)^2   (doubly stochastic penalty, Eq. 14)
    hard: -log p(y|s~,a), plus the REINFORCE term (log p(y|s~,a) - b) * d log p(s~|a) with a
    moving-average baseline, and an entropy bonus (Eq. 12); with probability ``expect_prob`` per
    caption the expected context replaces the sample (Sec. 4.1) and that caption gets no REINFORCE term.

    ``reward="to_go"`` (variance reduction, not in the paper): location s_t cannot change the words
    before t, so its log-probability is weighted by the reward to go sum_{t'>=t} log p(y_t'|s~,a)
    minus a moving-average baseline for position t, instead of by the whole sentence's. Same
    expected gradient (causality), less noise from the other words' locations. ``reward_discount`` < 1
    discounts later words (R_t = sum_t' discount^(t'-t) log p(y_t')): less variance again, but biased,
    since a location seen at t can still help the words after it through the LSTM state.
    """
    if reward not in ("sentence", "to_go"):
        raise ValueError(f"reward must be 'sentence' or 'to_go', got {reward!r}")
    tokens_in, targets = tokens[:, :-1], tokens[:, 1:]
    mask = (targets != model.pad_id).float()  # (B, T)
    hard = model.attention == "hard"
    if hard:
        use_expect = torch.rand(a.shape[0], generator=generator, device=a.device) < expect_prob  # generator there too
        out = model.decoder(a, tokens_in, mode=use_expect.to(a.device), generator=generator)
    else:
        out = model.decoder(a, tokens_in, mode=SOFT)
    nll_tok = F.cross_entropy(out["logits"].transpose(1, 2), targets, reduction="none",
                              ignore_index=model.pad_id)  # (B, T)
    nll = (nll_tok * mask).sum(1)  # (B,)
    loss = nll.mean()
    stats = {"nll_per_word": float(nll.detach().sum() / mask.sum())}
    if ds_lambda:
        coverage = (out["alphas"] * mask[:, :, None]).sum(1)  # (B, L)
        penalty = ((1.0 - coverage) ** 2).sum(1).mean()
        loss = loss + ds_lambda * penalty
        stats["ds_penalty"] = float(penalty.detach())
    if hard:
        sampled = (~use_expect).float().to(a.device)  # (B,)
        if reinforce is None:
            reinforce = ReinforceState()
        if reward == "sentence":
            rl, b = _reinforce_sentence(-nll.detach(), out["log_p_loc"], mask, sampled, reinforce)
        else:
            rl, b = _reinforce_to_go(-(nll_tok * mask).detach(), out["log_p_loc"], mask, sampled, reinforce,
                                     reward_discount)
        rl = reinforce_weight * rl
        ent = ((out["entropy"] * mask).sum(1)).mean()
        loss = loss + rl - entropy_weight * ent
        stats.update(reinforce_term=float(rl.detach()), entropy=float(ent.detach()), baseline=b)
    stats["loss"] = float(loss.detach())
    return loss, stats


def _reinforce_sentence(log_p_y, log_p_loc, mask, sampled, state: ReinforceState) -> tuple[torch.Tensor, float]:
    """The paper's term: -(log p(y|s~,a) - b) * sum_t log p(s~_t|a), b a scalar moving average.
    log_p_y (B,), log_p_loc/mask (B, T), sampled (B,) 1 where locations were sampled."""
    b = state.baseline if isinstance(state.baseline, float) else float(log_p_y.mean())
    log_p_s = (log_p_loc * mask).sum(1)  # (B,)
    rl = -((log_p_y - b) * log_p_s * sampled).mean()  # minimising this ascends the REINFORCE objective
    if sampled.sum() > 0:
        batch_reward = float((log_p_y * sampled).sum() / sampled.sum())
        state.baseline = batch_reward if not isinstance(state.baseline, float) else \
            state.decay * state.baseline + (1 - state.decay) * batch_reward
    return rl, b


def _reinforce_to_go(log_p_tok, log_p_loc, mask, sampled, state: ReinforceState,
                     discount: float = 1.0) -> tuple[torch.Tensor, float]:
    """Reward to go: -sum_t (R_t - b_t) log p(s~_t|a) with R_t = sum_{t'>=t} discount^(t'-t) log p(y_t'|s~,a).
    log_p_tok/log_p_loc/mask (B, T), sampled (B,)."""
    to_go = torch.zeros_like(log_p_tok)  # (B, T)
    running = torch.zeros_like(log_p_tok[:, 0])
    for t in reversed(range(log_p_tok.shape[1])):
        running = log_p_tok[:, t] + discount * running
        to_go[:, t] = running
    t_len = to_go.shape[1]
    weight = mask * sampled[:, None]  # (B, T): sampled captions, real words
    counts = weight.sum(0)  # (T,)
    batch_mean = (to_go * weight).sum(0) / counts.clamp(min=1)  # (T,)
    old = list(state.baseline) if isinstance(state.baseline, list) else []
    b = batch_mean.clone()  # positions without a moving average yet start from this batch
    known = min(len(old), t_len)
    b[:known] = torch.tensor(old[:known], dtype=b.dtype, device=b.device)
    rl = -((to_go - b) * log_p_loc * weight).sum(1).mean()
    new = b.clone()
    seen = counts > 0
    new[seen] = state.decay * b[seen] + (1 - state.decay) * batch_mean[seen]
    state.baseline = new.tolist() + old[t_len:]
    return rl, float(b[0])
