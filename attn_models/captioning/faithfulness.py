"""Does a word depend on where the model looked? Two tests per object word of a caption.

Attention maps show where the decoder looked, not whether what it saw there made the word. Xu et al. (2015)
show the maps as qualitative evidence but do not test them (not in the paper); these two tests do, for each
colour and class word
(``scenes.OBJECT_WORDS``; ``metrics.attention_correctness`` scores only the subset that names an item of a known
scene, because it needs the item's box, while these tests need none):

* **Occlusion.** The fewest grid cells holding at least half of the word's attention mass (highest α first) are
  hidden: the image region each of those cells covers (its stride block of pixels) is filled with the
  background, and the *same* caption is scored again with teacher forcing. The drop of the word's log-probability
  is compared with the drop when as many *random* cells are hidden instead: the mean over ``draws`` seeded draws
  among the cells *outside* the attended set (drawing among all cells when fewer than that are left, i.e. when
  attention is nearly uniform). A faithful map gives attended drop > random drop.
* **Gradient saliency.** |d log p(word) / d pixel| (Captum's ``Saliency``), summed over colour channels and over
  each cell's block of pixels, normalised to sum 1, set beside α with Spearman's rank correlation over the cells.

The background is the per-channel median of the model input's border pixels: black on Fashion-Scenes (black
canvas, items rarely touch the border), and for an arbitrary image the colour most of its frame has, which is a
plainer stand-in for "nothing here" than black or grey would be on a photo.

Hidden cells are the pixels a cell's position covers, not its receptive field (62 px for the small encoder, 8 px
stride): neighbouring cells still see part of what was hidden, so the drops measure what those pixels add, given
the rest of the image.

Hard attention: the teacher forcing here decodes as ``caption()`` does (``model.test_mode``), both on the clean image
and on the occluded ones. With ``hard_context`` ``"expect"`` (the authors' test-time decoding) that is the expected
context, as for soft attention, and α is the distribution it would sample from. With ``"argmax"`` it is the most likely
cell (``decoder.ARGMAX``; on an occluded image the argmax may move to another cell): α is the one-hot map of the
chosen cell, as ``caption()`` returns it, so the attended set is that one cell and one random cell is hidden per draw.
The saliency gradient then flows through the chosen cell's annotation, the gate β and the initial state (the argmax
itself has no gradient), and its rank correlation with a one-hot α says how high the chosen cell ranks in saliency.

Everything is deterministic for a given image, caption and seed: the random cells come from
``numpy.random.default_rng((seed, word index))``, and the clean and occluded images are scored in one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from attn_models.data.scenes import OBJECT_WORDS

MASS = 0.5  # share of a word's attention the hidden cells hold
DRAWS = 5  # random draws per word
MAX_DRAWS = 50
SALIENCY_CHUNK = 16  # words per backward pass


@dataclass
class WordTest:
    """Both tests for the word at ``index`` of the caption."""

    index: int
    word: str
    log_prob: float  # log p(word | earlier words, image), teacher-forced, nothing hidden
    hidden_cells: np.ndarray  # (k, 2) int: (row, column) of the attended cells hidden, highest α first
    hidden_mass: float  # their share of the word's attention (>= MASS)
    log_prob_attended: float  # ... with those cells hidden
    random_cells: np.ndarray  # (draws, k, 2) int: the random cells hidden in each draw
    log_prob_random: np.ndarray  # (draws,) ... with those hidden instead
    saliency: np.ndarray  # (gh, gw) float, sums to 1 (all zero if the gradient is zero)
    rank_correlation: float  # Spearman between saliency and α over the cells; NaN when either is constant
    random_overlaps: bool = False  # True when attention was so spread that random cells were drawn among all

    @property
    def drop_attended(self) -> float:
        """How much log-probability the word loses when its attended cells are hidden (nats; > 0 is a loss)."""
        return self.log_prob - self.log_prob_attended

    @property
    def drops_random(self) -> np.ndarray:
        return self.log_prob - self.log_prob_random

    @property
    def drop_random(self) -> float:
        """Mean over the draws of the loss when as many random cells are hidden."""
        return float(self.drops_random.mean())

    @property
    def drop_random_std(self) -> float:
        return float(self.drops_random.std())


@dataclass
class Faithfulness:
    words: list[str]
    alphas: np.ndarray  # (len(words), gh, gw): the teacher-forced maps of the clean image (caption()'s for its caption)
    log_probs: np.ndarray  # (len(words) + 1,): each word's log-probability, then <end>'s
    background: np.ndarray  # (3,) float in [0, 1]: the colour hidden cells are filled with
    tests: list[WordTest]  # one per tested word, in caption order
    draws: int
    seed: int
    attention: str


# ---- pieces --------------------------------------------------------------------------------------------------------
def cell_edges(size: int, cells: int) -> np.ndarray:
    """Pixel boundaries of ``cells`` equal cells along an axis of ``size`` pixels: cell i is [e[i], e[i+1])."""
    return (np.arange(cells + 1) * size) // cells


def attended_cells(alpha: np.ndarray, mass: float = MASS) -> np.ndarray:
    """Flat indices of the fewest cells whose α sums to at least ``mass``, highest α first (ties: lower index)."""
    flat = np.asarray(alpha, dtype=np.float64).ravel()
    order = np.argsort(-flat, kind="stable")
    cumulative = np.cumsum(flat[order])
    k = int(np.searchsorted(cumulative, mass * cumulative[-1] - 1e-9)) + 1  # relative: maps sum to 1 up to rounding
    return order[:min(k, flat.size)]


def random_cells(n_cells: int, exclude: np.ndarray, k: int, draws: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, bool]:
    """(draws, k) flat indices, each draw k distinct cells outside ``exclude``; among all cells when fewer than k
    are outside. Returns the draws and whether they could overlap ``exclude``."""
    outside = np.setdiff1d(np.arange(n_cells), exclude)
    pool, overlaps = (outside, False) if len(outside) >= k else (np.arange(n_cells), True)
    return np.stack([rng.choice(pool, size=k, replace=False) for _ in range(draws)]), overlaps


def border_background(x: torch.Tensor) -> torch.Tensor:
    """Per-channel median of the border pixels of images (B, 3, H, W) -> (B, 3)."""
    border = torch.cat([x[:, :, 0, :], x[:, :, -1, :], x[:, :, 1:-1, 0], x[:, :, 1:-1, -1]], dim=2)
    return border.median(dim=2).values


def occlude(x: torch.Tensor, cells: np.ndarray, grid_hw: tuple[int, int], background: torch.Tensor) -> torch.Tensor:
    """A copy of one image ``x`` (3, H, W) with the pixels of grid ``cells`` (flat indices) set to ``background``."""
    gh, gw = grid_hw
    ys, xs = cell_edges(x.shape[1], gh), cell_edges(x.shape[2], gw)
    out = x.clone()
    for cell in np.asarray(cells).ravel():
        r, c = divmod(int(cell), gw)
        out[:, ys[r]:ys[r + 1], xs[c]:xs[c + 1]] = background[:, None, None]
    return out


def pool_to_grid(pixels: np.ndarray, grid_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) -> (gh, gw): the sum over each cell's block of pixels."""
    gh, gw = grid_hw
    ys, xs = cell_edges(pixels.shape[0], gh), cell_edges(pixels.shape[1], gw)
    return np.add.reduceat(np.add.reduceat(pixels, ys[:-1], axis=0), xs[:-1], axis=1)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their average rank); NaN when either side is constant."""
    ra, rb = _ranks(np.asarray(a, np.float64).ravel()), _ranks(np.asarray(b, np.float64).ravel())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else float("nan")


def _ranks(v: np.ndarray) -> np.ndarray:
    order = np.argsort(v, kind="stable")
    ranks = np.empty(len(v), np.float64)
    ranks[order] = np.arange(len(v), dtype=np.float64)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


# ---- scoring -------------------------------------------------------------------------------------------------------
def token_ids(model, words: list[str]) -> torch.Tensor:
    """(len(words) + 2,) ids of <start> words <end>; a word outside the model's vocabulary is a ValueError."""
    unknown = [w for w in words if w not in model.word_to_id or w.startswith("<")]
    if unknown:
        raise ValueError(f"words outside the model's vocabulary: {', '.join(map(repr, unknown))}")
    return torch.tensor([model.start_id, *(model.word_to_id[w] for w in words), model.end_id], dtype=torch.long)


def teacher_forced(model, x: torch.Tensor, words: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The same caption scored on every image of ``x`` (B, 3, S, S), decoding as at test time (``model.test_mode``).

    Returns the log-probability of each word and of <end> (B, T+1), and the attention maps (B, T+1, L). Log-softmax
    over the whole vocabulary, as the beam search scores (which only forbids some words), so the sum over a
    hypothesis is its beam log-probability. Differentiable in ``x``."""
    tokens = token_ids(model, words).to(x.device)
    tokens = tokens[None].expand(x.shape[0], -1)
    out = model.decoder(model.encode(x), tokens[:, :-1], mode=model.test_mode)
    log_p = F.log_softmax(out["logits"].float(), dim=-1)
    return log_p.gather(2, tokens[:, 1:, None]).squeeze(2), out["alphas"]


def saliency(model, x: torch.Tensor, words: list[str], positions: list[int]) -> np.ndarray:
    """Gradient saliency of each word at ``positions`` w.r.t. the pixels of one image ``x`` (1, 3, S, S), with
    Captum's ``Saliency`` (|gradient|), summed over channels and pooled to the grid, normalised: (n, gh, gw)."""
    from captum.attr import Saliency

    if not positions:
        return np.zeros((0, *model.grid_hw))

    def word_log_prob(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        # One copy of the image per word: example i's output is word index[i]'s log-probability, and the examples
        # do not interact (eval mode), so one backward pass gives every word its own gradient.
        log_p, _ = teacher_forced(model, images, words)
        return log_p[torch.arange(len(index), device=images.device), index]

    explainer = Saliency(word_log_prob)
    pixels = []
    for start in range(0, len(positions), SALIENCY_CHUNK):  # bounded memory however long the caption
        index = torch.tensor(positions[start:start + SALIENCY_CHUNK], device=x.device)
        copies = x.detach().expand(len(index), -1, -1, -1).clone().requires_grad_()
        grads = explainer.attribute(copies, abs=True, additional_forward_args=(index,))
        pixels.append(grads.sum(1).detach().double().cpu().numpy())  # (n, S, S)
    pixels = np.concatenate(pixels)
    pooled = np.stack([pool_to_grid(p, model.grid_hw) for p in pixels])
    totals = pooled.sum(axis=(1, 2), keepdims=True)
    return np.divide(pooled, totals, out=np.zeros_like(pooled), where=totals > 0)


def object_positions(words: list[str]) -> list[int]:
    """Indices of the colour and class words (``scenes.OBJECT_WORDS``)."""
    return [t for t, w in enumerate(words) if w in OBJECT_WORDS]


def check_draws(draws) -> int:
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or not 1 <= draws <= MAX_DRAWS:
        raise ValueError(f"draws must be an integer in 1..{MAX_DRAWS}, got {draws!r}")
    return int(draws)


def faithfulness(model, image: Image.Image, words: list[str] | None = None, beam_size: int = 3, max_len: int = 20,
                 draws: int = DRAWS, seed: int = 0, positions: list[int] | None = None,
                 background: tuple[float, float, float] | None = None) -> Faithfulness:
    """Occlusion and saliency tests (module docstring) for the words at ``positions`` (default: the colour and class
    words) of ``words`` (default: ``model.caption(image, beam_size, max_len)``'s caption). ``background``: RGB in
    [0, 1] for the hidden cells (default: the median border colour)."""
    draws = check_draws(draws)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if words is None:
        words = model.caption(image, beam_size=beam_size, max_len=max_len).words
    words = list(words)
    positions = object_positions(words) if positions is None else [int(t) for t in positions]
    if any(not 0 <= t < len(words) for t in positions):
        raise ValueError(f"positions must index the caption's {len(words)} words, got {positions}")
    x = model.preprocess(image)
    gh, gw = model.grid_hw
    bg = (border_background(x)[0] if background is None else
          torch.tensor(background, dtype=x.dtype, device=x.device))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean_log_p, clean_alphas = teacher_forced(model, x, words)
            alphas = clean_alphas[0, :len(words)].double().cpu().numpy()
            alphas = alphas / alphas.sum(axis=1, keepdims=True)
            tests = []
            for t in positions:
                hidden = attended_cells(alphas[t])
                rng = np.random.default_rng((seed, t))
                rand, overlaps = random_cells(gh * gw, hidden, len(hidden), draws, rng)
                # One batch per word, the clean image first: each drop compares scores of one batch.
                batch = torch.stack([x[0], occlude(x[0], hidden, (gh, gw), bg),
                                     *(occlude(x[0], r, (gh, gw), bg) for r in rand)])
                scores = teacher_forced(model, batch, words)[0][:, t].double().cpu().numpy()
                tests.append(WordTest(
                    index=t, word=words[t], log_prob=float(scores[0]),
                    hidden_cells=np.stack(np.divmod(hidden, gw), axis=-1), hidden_mass=float(alphas[t][hidden].sum()),
                    log_prob_attended=float(scores[1]), random_cells=np.stack(np.divmod(rand, gw), axis=-1),
                    log_prob_random=scores[2:], saliency=np.zeros((gh, gw)), rank_correlation=float("nan"),
                    random_overlaps=overlaps))
        saliency_maps = saliency(model, x, words, positions)
    finally:
        model.train(was_training)
    for test, sal in zip(tests, saliency_maps, strict=True):
        test.saliency, test.rank_correlation = sal, spearman(sal, alphas[test.index])
    return Faithfulness(words, alphas.reshape(len(words), gh, gw).astype(np.float32),
                        clean_log_p[0].double().cpu().numpy(), bg.double().cpu().numpy(), tests, draws, int(seed),
                        model.attention_kind)


def summary(tests: list[WordTest]) -> dict:
    """Means and spreads (standard deviation over words) of the drops and the rank correlation."""
    attended = np.array([w.drop_attended for w in tests], np.float64)
    rand = np.array([w.drop_random for w in tests], np.float64)
    corr = np.array([w.rank_correlation for w in tests], np.float64)
    corr = corr[np.isfinite(corr)]

    def mean(v):
        return float(v.mean()) if len(v) else float("nan")

    def std(v):
        return float(v.std()) if len(v) else float("nan")

    return {"drop_attended": mean(attended), "drop_attended_std": std(attended),
            "drop_random": mean(rand), "drop_random_std": std(rand),
            "drop_difference": mean(attended - rand), "drop_difference_std": std(attended - rand),
            "attended_beats_random": mean((attended > rand).astype(np.float64)),
            "rank_correlation": mean(corr), "rank_correlation_std": std(corr),
            "words": len(tests), "words_with_rank_correlation": len(corr)}
