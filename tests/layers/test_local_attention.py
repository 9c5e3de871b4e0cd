"""Blocked local attention equals the dense masked reference; causality; channel ordering; visibility codes."""
import numpy as np
import pytest
import torch

from attn_models.layers.local_attention import (
    VIS_BLOCK,
    VIS_MASKED,
    VIS_MEMORY,
    VIS_OUTSIDE,
    VIS_QUERY,
    AttentionPattern,
    attention_mask,
    dense_reference_attention,
    dense_weights,
    generation_order,
    generation_rank,
    local_attention,
    visibility,
)

P1 = AttentionPattern("local1d", query_len=8, memory_len=12)
P1B = AttentionPattern("local1d", query_len=16, memory_len=16)
P2 = AttentionPattern("local2d", block_h=2, block_w=4, flange_h=3, flange_w=2)
P2B = AttentionPattern("local2d", block_h=3, block_w=6, flange_h=2, flange_w=5)
PF = AttentionPattern("full")
# (h, w, c): multiples of the blocks and not, C=1 and C=3
SHAPES = [(4, 8, 1), (5, 7, 1), (3, 5, 3), (6, 6, 3)]
PATTERNS = [P1, P1B, P2, P2B, PF]


def _qkv(shape, heads=2, d=5, batch=2, seed=0):
    h, w, c = shape
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, heads, h * w * c, d, generator=g, dtype=torch.float64, requires_grad=True)
            for _ in range(3)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: f"{p.kind}-{p.query_len}-{p.block_h}x{p.block_w}")
def test_blocked_equals_dense_values_and_gradients(shape, pattern):
    q, k, v = _qkv(shape)
    out, bw = local_attention(q, k, v, *shape, pattern, return_weights=True)
    ref, ref_w = dense_reference_attention(q, k, v, *shape, pattern, return_weights=True)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(dense_weights(bw), ref_w)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * g).sum(), (q, k, v))
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b)
    # the fast path without weights (SDPA for "full") agrees too
    torch.testing.assert_close(local_attention(q, k, v, *shape, pattern), ref)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.kind)
def test_weight_rows_sum_to_one_and_respect_mask(shape, pattern):
    q, k, v = _qkv(shape)
    _, bw = local_attention(q, k, v, *shape, pattern, return_weights=True)
    dense = dense_weights(bw)
    torch.testing.assert_close(dense.sum(-1), torch.ones(dense.shape[:-1], dtype=dense.dtype))
    mask = attention_mask(*shape, pattern)
    assert (dense[..., ~mask] == 0).all()
    r = shape[0] * shape[1] * shape[2] - 2
    torch.testing.assert_close(bw.query_row(r), dense[:, :, r])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("pattern", PATTERNS, ids=lambda p: p.kind)
def test_no_query_sees_a_later_position(shape, pattern):
    """Perturb everything from step t on (generation order): outputs of steps < t do not move."""
    h, w, c = shape
    n = h * w * c
    order = generation_order(*shape, pattern)
    q, k, v = (x.detach() for x in _qkv(shape))
    base = local_attention(q, k, v, *shape, pattern)
    for t in (1, n // 3, n - 1):
        later = order[t:]
        k2, v2 = k.clone(), v.clone()
        k2[:, :, later] += 10 * torch.randn_like(k2[:, :, later])
        v2[:, :, later] += 10 * torch.randn_like(v2[:, :, later])
        out = local_attention(q, k2, v2, *shape, pattern)
        torch.testing.assert_close(out[:, :, order[:t]], base[:, :, order[:t]], rtol=0, atol=0)
        assert not torch.allclose(out[:, :, order[t]], base[:, :, order[t]])  # the perturbation is visible


def test_generation_order_is_a_permutation_and_block_raster():
    for shape in SHAPES:
        for p in PATTERNS:
            o = generation_order(*shape, p)
            assert sorted(o.tolist()) == list(range(shape[0] * shape[1] * shape[2]))
            assert (generation_rank(*shape, p)[o] == torch.arange(len(o))).all()
    # 2D, 5x7x1 grid with 2x4 blocks: first block = rows 0-1, cols 0-3 in raster order
    o = generation_order(5, 7, 1, P2).tolist()
    assert o[:8] == [0, 1, 2, 3, 7, 8, 9, 10]
    assert o[8:14] == [4, 5, 6, 11, 12, 13]  # partial block at the right edge (3 columns)
    assert o[-3:] == [32, 33, 34]  # last partial block: bottom row, cols 4-6


def test_channels_are_interleaved_positions():
    """C=3: raster index r = row*(w*3) + col*3 + channel; channel 2 of a pixel sees channels 0,1 of it."""
    h, w, c = 3, 4, 3
    for p in (PF, AttentionPattern("local1d", query_len=6, memory_len=6)):
        mask = attention_mask(h, w, c, p)
        px = (1 * w + 2) * c  # pixel (1, 2), channel 0
        assert mask[px + 2, px] and mask[px + 2, px + 1] and mask[px + 1, px]
        assert not mask[px, px + 1] and not mask[px + 1, px + 2]
    # 2D blocks cover channel columns: a block 1 pixel wide with 3 channels = 3 grid columns
    p = AttentionPattern("local2d", block_h=1, block_w=3, flange_h=1, flange_w=3)
    vis = visibility(h, w, c, p, query=(1 * w + 2) * c + 2)  # pixel (1, 2) channel 2
    assert vis.shape == (h, w * c)
    assert vis[1, 6] == VIS_BLOCK and vis[1, 7] == VIS_BLOCK and vis[1, 8] == VIS_QUERY
    assert (vis[1, 3:6] == VIS_MEMORY).all()  # the pixel to the left, all channels
    assert (vis[1, 9:12] == VIS_MASKED).all()  # the pixel to the right: future
    assert (vis[0, 3:12] == VIS_MEMORY).all() and vis[0, 2] == VIS_OUTSIDE
    assert (vis[2] == VIS_OUTSIDE).all()


def test_visibility_codes_match_mask():
    for shape in SHAPES:
        for p in PATTERNS:
            mask = attention_mask(*shape, p)
            n = mask.shape[0]
            for qry in (0, n // 2, n - 1):
                vis = visibility(*shape, p, qry).reshape(-1)
                seen = np.isin(vis, (VIS_MEMORY, VIS_BLOCK, VIS_QUERY))
                assert (seen == mask[qry].numpy()).all()
                assert vis[qry] == VIS_QUERY
    # 1D: the block starts at a multiple of lq, memory is the lm positions before it
    vis = visibility(4, 8, 1, P1, 20).reshape(-1)
    assert (vis[4:16] == VIS_MEMORY).all() and (vis[16:20] == VIS_BLOCK).all()
    assert (vis[21:24] == VIS_MASKED).all() and (vis[24:] == VIS_OUTSIDE).all() and (vis[:4] == VIS_OUTSIDE).all()


def test_blocked_memory_is_linear():
    """Blocked score tensors grow linearly with N (no N x N matrix) for the local kinds."""
    from attn_models.layers.local_attention import block_index
    for p in (AttentionPattern("local1d"), AttentionPattern("local2d")):
        small = block_index(32, 32, 3, p).mask.numel() / (32 * 32 * 3)
        big = block_index(64, 64, 3, p).mask.numel() / (64 * 64 * 3)
        assert big <= 1.1 * small


def test_bad_arguments():
    with pytest.raises(ValueError):
        AttentionPattern("diagonal")
    with pytest.raises(ValueError):
        AttentionPattern("local1d", query_len=0)
    with pytest.raises(ValueError):
        visibility(4, 4, 1, P1, 16)
    with pytest.raises(ValueError):
        generation_order(0, 4, 1, P1)
    q = torch.zeros(1, 1, 10, 4)
    with pytest.raises(ValueError):
        local_attention(q, q, q, 4, 4, 1, P1)
