"""Counted cost of local attention patterns, checked against the dense mask, and the memory measurement."""
import numpy as np
import pytest
import torch

from attn_models.layers.cost import attended_counts, measure_layer, pattern_cost, peak_allocated_bytes
from attn_models.layers.local_attention import AttentionPattern, attention_mask

PATTERNS = [
    AttentionPattern("full"),
    AttentionPattern("local1d", query_len=8, memory_len=12),
    AttentionPattern("local1d", query_len=7, memory_len=0),
    AttentionPattern("local2d", block_h=2, block_w=4, flange_h=1, flange_w=2),
    AttentionPattern("local2d", block_h=3, block_w=5, flange_h=2, flange_w=3),
]
SHAPES = [(6, 6, 1), (5, 7, 3), (9, 4, 1)]  # include sizes that are not multiples of the blocks


@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: f"{p.kind}")
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_attended_counts_equal_dense_mask(shape, pattern):
    expected = attention_mask(*shape, pattern).sum(1).numpy()
    np.testing.assert_array_equal(attended_counts(*shape, pattern), expected)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pattern_cost_counts(shape):
    h, w, c = shape
    n = h * w * c
    p1 = AttentionPattern("local1d", query_len=8, memory_len=12)
    cost = pattern_cost(h, w, c, p1, head_dim=16)
    assert cost.memory_block == 8 + 12 and cost.query_block == 8
    assert cost.num_blocks == -(-n // 8)
    assert cost.score_entries == cost.num_blocks * 8 * 20
    assert cost.flops == 4 * 16 * cost.score_entries
    mask = attention_mask(h, w, c, p1)
    assert cost.attended_mean == pytest.approx(mask.sum(1).float().mean().item())
    assert cost.attended_max == mask.sum(1).max().item()

    p2 = AttentionPattern("local2d", block_h=2, block_w=4, flange_h=1, flange_w=2)
    cost2 = pattern_cost(h, w, c, p2)
    assert cost2.memory_block == (1 + 2) * (4 + 2 * 2)
    assert cost2.num_blocks == -(-h // 2) * -(-(w * c) // 4)

    full = pattern_cost(h, w, c, AttentionPattern("full"))
    assert full.score_entries == full.full_score_entries == n * n
    assert full.flops_ratio == 1.0
    assert full.attended_mean == pytest.approx((n + 1) / 2)


def test_local_cost_is_linear_in_positions():
    p = AttentionPattern("local2d")
    small, big = pattern_cost(32, 32, 3, p), pattern_cost(64, 64, 3, p)
    assert big.score_entries == 4 * small.score_entries  # 4x the positions -> 4x the work
    assert big.full_score_entries == 16 * small.full_score_entries
    assert big.flops_ratio < small.flops_ratio < 1


@pytest.mark.parametrize("args", [(0, 4, 1), (4, -1, 1), (4, 4, 1.5), (4, 4, True)])
def test_bad_shapes_raise(args):
    with pytest.raises(ValueError):
        pattern_cost(*args, AttentionPattern("local1d"))


def test_bad_head_dim_raises():
    with pytest.raises(ValueError):
        pattern_cost(4, 4, 1, AttentionPattern("local1d"), head_dim=0)


def test_peak_allocated_bytes_sees_a_known_allocation():
    def fn():
        a = torch.empty(1_000_000)  # 4 MB live ...
        b = torch.empty(500_000)    # ... plus 2 MB: peak 6 MB
        del a
        c = torch.empty(250_000)    # 3 MB live, below the peak
        return b, c

    peak = peak_allocated_bytes(fn)
    assert 6_000_000 <= peak < 6_100_000


def test_measure_layer_agrees_with_dense_and_skips_large():
    p = AttentionPattern("local2d", block_h=2, block_w=4, flange_h=2, flange_w=2)
    m = measure_layer(8, 8, 1, p, head_dim=8, repeats=1)
    assert m.local_seconds > 0 and m.dense_seconds > 0
    assert m.local_peak_bytes > 0 and m.dense_peak_bytes > 0
    assert m.max_abs_diff < 1e-5
    skipped = measure_layer(8, 8, 1, p, head_dim=8, repeats=1, dense_limit=10, measure_memory=False)
    assert skipped.dense_seconds is None and skipped.dense_mask_bytes == 64 * 64
