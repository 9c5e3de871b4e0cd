"""Completion from any mask (``completion.py``) and per-head attention statistics (``attention_stats.py``):
visible pixels are kept, hidden ones sampled, later pixels condition on visible ones and earlier ones cannot,
the "could not see" map on a hand-checked case, and distance/entropy on constructed attention."""
import math

import numpy as np
import pytest
import torch

from attn_models.image_transformer.attention_stats import (
    head_stats,
    model_head_stats,
    pixel_distances,
    query_grid,
)
from attn_models.image_transformer.completion import check_known, complete, could_not_see, unseen_counts
from attn_models.image_transformer.model import ImageTransformer
from attn_models.image_transformer.sampler import CachedSampler
from attn_models.layers.local_attention import generation_rank
from tests.image_transformer.test_model import random_images, tiny


def scattered_mask(m, seed=0, p=0.4) -> np.ndarray:
    """A random mask of visible pixels, not a prefix in generation order."""
    return np.random.default_rng(seed).random(m.image_shape) < p


@pytest.mark.parametrize("kind", ["local1d", "local2d", "full"])
def test_visible_pixels_keep_their_values_and_hidden_ones_are_sampled(kind):
    m = tiny(kind, channels=1, classes=3)
    src = random_images(m, 1, seed=5)[0]
    known = scattered_mask(m)
    out = complete(m, src, known, n=3, labels=[1, 1, 1], seed=2)
    assert out.shape == (3, *m.image_shape) and out.dtype == np.uint8
    assert (out[:, known] == src[known]).all()
    assert len({o[~known].tobytes() for o in out}) == 3  # three different draws of the hidden pixels
    assert (out[:, ~known] != src[~known]).mean() > 0.5  # sampled, not copied from the source
    # the same call, the same images; another seed, other images
    np.testing.assert_array_equal(complete(m, src, known, n=3, labels=[1, 1, 1], seed=2), out)
    assert not np.array_equal(complete(m, src, known, n=3, labels=[1, 1, 1], seed=3), out)


@pytest.mark.parametrize("kind", ["local1d", "local2d"])
def test_hidden_pixels_are_draws_from_the_models_conditionals(kind):
    """The log-probabilities the sampler draws from are the teacher-forced ones on the completed image: every
    position, visible or hidden, sees exactly the image as finally written before it."""
    m = tiny(kind, channels=1, classes=3)
    src = random_images(m, 1, seed=7)[0]
    known = scattered_mask(m, seed=1)
    out = complete(m, src, known, n=2, labels=[0, 2], seed=4)
    trace = []
    pre = torch.from_numpy(np.broadcast_to(src, (2, *src.shape)).reshape(2, -1).astype(np.int64))
    kn = torch.from_numpy(np.broadcast_to(known, (2, *known.shape)).reshape(2, -1).copy())
    *_, (img, _) = CachedSampler(m).stream(2, torch.tensor([0, 2]), 1.0, 4, pre, kn, 10_000, trace)
    np.testing.assert_array_equal(img, out)
    ref = torch.log_softmax(m.logits(out, [0, 2]), -1).reshape(2, -1, 256)[:, m.order]
    torch.testing.assert_close(torch.stack(trace, 1), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["local1d", "local2d"])
def test_pixels_after_a_visible_pixel_condition_on_it_and_pixels_before_do_not(kind):
    m = tiny(kind, channels=1, classes=3)
    n_pos = m.num_positions
    order = m.order.numpy()
    src = random_images(m, 1, seed=3)[0]
    t = n_pos // 2  # the visible pixel sits half-way through generation order
    known = np.zeros(n_pos, bool)
    known[order[t]] = True
    known = known.reshape(m.image_shape)
    a = src.copy()
    b = src.copy()
    a.reshape(-1)[order[t]] = 0
    b.reshape(-1)[order[t]] = 255
    out_a = complete(m, a, known, n=4, labels=[0, 1, 2, 0], seed=9).reshape(4, -1)[:, order]
    out_b = complete(m, b, known, n=4, labels=[0, 1, 2, 0], seed=9).reshape(4, -1)[:, order]
    np.testing.assert_array_equal(out_a[:, :t], out_b[:, :t])  # before it: same draws, same inputs
    assert (out_a[:, t] == 0).all() and (out_b[:, t] == 255).all()  # kept
    assert (out_a[:, t + 1:] != out_b[:, t + 1:]).any()  # after it: conditioned on it


def test_a_prefix_mask_gives_what_sample_gives():
    m = tiny("local2d", channels=1, classes=3)
    src = random_images(m, 1)[0]
    known = m.prefix_mask(2)
    np.testing.assert_array_equal(complete(m, src, known, n=2, labels=[0, 1], seed=1),
                                  m.sample(2, [0, 1], seed=1, prefix=src, known=known))


def test_rgb_pixel_masks_cover_every_channel():
    m = tiny("local1d", channels=3, classes=0)
    src = random_images(m, 1)[0]
    known = np.zeros(m.image_shape[:2], bool)
    known[1:3, 2:5] = True
    out = complete(m, src, known, n=2, seed=0)
    assert (out[:, known] == src[known]).all()
    assert check_known(m, known).shape == m.image_shape and check_known(m, known)[1, 2].all()


@pytest.mark.parametrize("kwargs", [
    dict(known=np.zeros((5, 6, 1), np.uint8)),  # not boolean
    dict(known=np.zeros((6, 5), bool)),  # wrong shape
    dict(image=np.zeros((5, 6, 1), np.float32)),
    dict(image=np.zeros((4, 6), np.uint8)),
    dict(image=np.zeros((3, 5, 6, 1), np.uint8)),  # three images for n=2
    dict(n=0), dict(temperature=0.0), dict(labels=[0, 9]), dict(seed=-1),
])
def test_bad_completion_arguments_raise_value_error(kwargs):
    m = tiny("local1d", classes=3)
    args = dict(image=np.zeros((5, 6), np.uint8), known=np.zeros((5, 6), bool), n=2, labels=[0, 1]) | kwargs
    with pytest.raises(ValueError):
        complete(m, **args)


def test_could_not_see_on_a_hand_checked_local2d_case():
    """A 4x4 grey image, local 2D with 2x2 blocks: generation order is block by block,
        rank = [[ 0  1  4  5]
                [ 2  3  6  7]
                [ 8  9 12 13]
                [10 11 14 15]]
    Visible: (0, 3) (rank 5) and (2, 0) (rank 8). Hidden (1, 2) has rank 6: it saw (0, 3) but not (2, 0).
    Hidden (0, 2) has rank 4: it saw neither. Hidden (3, 3) has rank 15: it saw both."""
    m = ImageTransformer(image_size=4, channels=1, num_classes=0, d_model=8, heads=2, layers=1, ffn=8,
                         attention="local2d", block_h=2, block_w=2, flange_h=1, flange_w=1)
    rank = generation_rank(4, 4, 1, m.pattern).numpy().reshape(4, 4)
    np.testing.assert_array_equal(rank, [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]])
    known = np.zeros((4, 4), bool)
    known[0, 3] = known[2, 0] = True
    counts = unseen_counts(m, known)[..., 0]
    np.testing.assert_array_equal(counts, [[2, 2, 2, 0],
                                           [2, 2, 1, 1],
                                           [0, 0, 0, 0],
                                           [0, 0, 0, 0]])
    matrix = could_not_see(m, known)
    assert matrix.shape == (16, 16)
    np.testing.assert_array_equal(matrix.sum(1).reshape(4, 4), counts)
    assert set(np.flatnonzero(matrix[1 * 4 + 2])) == {2 * 4 + 0}
    assert set(np.flatnonzero(matrix[0 * 4 + 2])) == {0 * 4 + 3, 2 * 4 + 0}
    assert not matrix[:, ~known.reshape(-1)].any() and not matrix[known.reshape(-1)].any()


def test_could_not_see_in_raster_order():
    m = tiny("local1d", size=(3, 3))
    known = np.zeros((3, 3), bool)
    known[1, 1] = True  # raster index 4
    counts = unseen_counts(m, known)[..., 0]
    np.testing.assert_array_equal(counts, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])


def test_head_stats_on_a_constructed_attention():
    """Query 0 at distance 0 from key 0, 2 from key 1, 3 from key 2. Head 0 splits its weight evenly over keys 0
    and 1 (mean distance 1, entropy 1 bit); head 1 puts everything on key 2 (distance 3, entropy 0); query 1
    is left out by ``valid``."""
    distance = torch.tensor([[0.0, 2.0, 3.0], [5.0, 5.0, 5.0]])
    weights = torch.tensor([[[[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]],
                             [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]])  # (B=1, heads=2, Q=2, K=3)
    d, e, u = head_stats(weights, distance, valid=torch.tensor([True, False]))
    np.testing.assert_allclose(d, [1.0, 3.0])
    np.testing.assert_allclose(e, [1.0, 0.0])
    np.testing.assert_allclose(u, [1.0, 0.0])  # keys with weight: 2 and 1
    allowed = torch.tensor([[True, True, True], [True, True, True]])
    d, e, u = head_stats(weights, distance, allowed=allowed)  # both queries, three keys each allowed
    np.testing.assert_allclose(d, [(1.0 + 5.0) / 2, (3.0 + 5.0) / 2])
    np.testing.assert_allclose(e, [(1.0 + math.log2(3)) / 2, 0.0])
    np.testing.assert_allclose(u, [math.log2(3)] * 2)


def test_pixel_distances_are_between_pixels_not_channels():
    # 2 x 2 RGB image: raster index = (row * 2 + col) * 3 + channel; N = 12 is padding
    qi = torch.tensor([[0, 5, 12]])
    ki = torch.tensor([[2, 9, 11, 12]])
    d = pixel_distances(2, 2, 3, qi, ki)[0]
    # query 0: pixel (0, 0); 5: (0, 1). keys 2: (0, 0); 9: (1, 1); 11: (1, 1)
    np.testing.assert_allclose(d[0], [0.0, math.sqrt(2), math.sqrt(2), 0.0])
    np.testing.assert_allclose(d[1], [1.0, 1.0, 1.0, 0.0])
    assert (d[2] == 0).all()


@pytest.mark.parametrize("kind", ["local1d", "local2d"])
def test_query_grid_is_every_layers_query_attention(kind):
    m = tiny(kind, channels=1, classes=3)
    img = random_images(m, 1)[0]
    grid = query_grid(m, img, 2, 3, 4, 0)
    assert grid.shape == (m.num_layers, m.num_heads, 5, 6)
    for layer in range(m.num_layers):
        np.testing.assert_allclose(grid[layer], m.query_attention(img, 2, 3, 4, 0, layer), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError):
        query_grid(m, img, 2, 5, 0, 0)


@pytest.mark.parametrize("kind", ["local1d", "local2d"])
def test_model_head_stats_match_a_dense_computation(kind):
    m = tiny(kind, channels=1, classes=3)
    imgs = random_images(m, 2)
    stats = model_head_stats(m, imgs, [0, 1])
    assert stats.mean_distance.shape == stats.entropy.shape == (m.num_layers, m.num_heads)
    h, w, _ = m.image_shape
    ys, xs = np.divmod(np.arange(h * w), w)
    dist = np.hypot(ys[:, None] - ys[None], xs[:, None] - xs[None])  # (N, N)
    for layer in range(m.num_layers):
        rows = np.stack([np.stack([m.query_attention(imgs[k], [0, 1][k], r, c, 0, layer).reshape(m.num_heads, -1)
                                   for r in range(h) for c in range(w)], 1) for k in range(2)])  # (2, heads, N, N)
        want_d = (rows * dist).sum(-1).mean((0, 2))
        logs = np.where(rows > 0, np.log2(np.where(rows > 0, rows, 1)), 0)
        want_e = -(rows * logs).sum(-1).mean((0, 2))
        np.testing.assert_allclose(stats.mean_distance[layer], want_d, rtol=1e-5)
        np.testing.assert_allclose(stats.entropy[layer], want_e, rtol=1e-4, atol=1e-6)
    assert (stats.entropy <= stats.uniform_entropy + 1e-9).all() and stats.queries == h * w
    hidden = np.zeros(m.image_shape, bool)
    hidden[2:] = True
    assert model_head_stats(m, imgs, [0, 1], queries=hidden).queries == 3 * w
    assert len(stats.rows()) == m.num_layers * m.num_heads
