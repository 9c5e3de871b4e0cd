"""Inductive-bias models: the CNN is exactly shift-equivariant away from the borders and the absolute-position
net is not; the relative bias depends only on offsets; no position information means patch-shuffle invariance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attn_models.inductive_bias import evaluate
from attn_models.inductive_bias.model import InductiveBiasNet, RelativeBias, place


@pytest.fixture(scope="module")
def items():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(6, 28, 28, generator=g) * 255).to(torch.uint8)


def net(kind="cnn", position="absolute"):
    torch.manual_seed(0)
    return InductiveBiasNet(kind=kind, widths=[8, 8, 8], d_model=16, heads=2, layers=2, patch=4,
                            position=position).eval()


def test_place_centres_and_shifts_the_item():
    item = torch.full((1, 28, 28), 255, dtype=torch.uint8)
    x = place(item, 2, -3)
    assert x.shape == (1, 1, 40, 40) and x.sum() == 28 * 28
    assert x[0, 0, 8, 3] == 1 and x[0, 0, 7, 3] == 0 and x[0, 0, 8, 2] == 0  # top-left at (6+2, 6-3)
    with pytest.raises(ValueError):
        place(item, 7, 0)


def test_cnn_is_exactly_equivariant_away_from_the_borders(items):
    errors = evaluate.equivariance_error(net("cnn"), items)
    assert set(errors) == {0, 1, 2} and all(set(e) == set(range(1, 7)) for e in errors.values())
    assert max(v for e in errors.values() for v in e.values()) < 1e-5


def test_absolute_positions_break_equivariance_and_none_keeps_it(items):
    absolute = evaluate.equivariance_error(net("attention", "absolute"), items)
    none = evaluate.equivariance_error(net("attention", "none"), items)
    assert set(absolute[0]) == set(range(1, 7))
    assert absolute[1][4] > 0.05  # the learned position embedding does not move with the item
    assert none[1][4] < 1e-5  # a whole-patch shift permutes the same tokens (the background is uniform)
    assert none[1][1] > 0.05  # a 1-pixel shift changes what every 4x4 patch holds


def test_relative_bias_depends_only_on_offsets():
    rb = RelativeBias(heads=2, h=3, w=4)
    with torch.no_grad():
        rb.table.copy_(torch.randn_like(rb.table))
    b = rb()  # (2, 12, 12)
    pos = [(i // 4, i % 4) for i in range(12)]
    for i, (yi, xi) in enumerate(pos):
        for j, (yj, xj) in enumerate(pos):
            assert torch.equal(b[:, i, j], rb.table[:, yj - yi + 2, xj - xi + 3])
    # two query/key pairs with the same offset share one bias
    assert torch.equal(b[:, 0, 5], b[:, 6, 11])  # (0,0)->(1,1) and (1,2)->(2,3)


def test_no_position_net_cannot_tell_shuffled_patches(items):
    canvases = place(items)
    shuffled = evaluate.shuffle_patches(canvases, 4, seed=1)
    assert not torch.equal(shuffled, canvases)
    assert torch.equal(shuffled.flatten().sort()[0], canvases.flatten().sort()[0])  # same pixels, moved
    with torch.no_grad():
        none, absolute = net("attention", "none"), net("attention", "absolute")
        torch.testing.assert_close(none(shuffled), none(canvases), atol=1e-5, rtol=0)
        assert (absolute(shuffled) - absolute(canvases)).abs().max() > 1e-3


def test_accuracy_vs_shift_shape(items):
    labels = torch.arange(6) % 10
    curves = evaluate.accuracy_vs_shift(net("cnn"), items, labels, max_shift=2)
    assert set(curves) == {"mean", "up", "down", "left", "right"} and all(len(c) == 3 for c in curves.values())
    assert all(0 <= a <= 1 for c in curves.values() for a in c)
    np.testing.assert_allclose(curves["mean"][1], np.mean([curves[d][1] for d in ("up", "down", "left", "right")]))


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError):
        InductiveBiasNet(kind="mlp")
    with pytest.raises(ValueError):
        InductiveBiasNet(kind="attention", position="sinusoidal")
    with pytest.raises(ValueError):
        InductiveBiasNet(kind="attention", patch=3)
