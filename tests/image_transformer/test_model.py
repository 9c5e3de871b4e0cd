"""Image Transformer: step == teacher forcing, cached sampler == teacher forcing, causality, seeds, completion,
validation, API shapes, upload preprocessing and prefix masks."""
import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attn_models.image_transformer import sampler as sampler_module
from attn_models.image_transformer.model import ImageTransformer, KVCache
from attn_models.image_transformer.sampler import CachedSampler, cache_slots, recompute_sample
from attn_models.layers.local_attention import AttentionPattern, attention_mask, generation_rank

KINDS = {
    "local1d": dict(attention="local1d", query_len=8, memory_len=12),
    "local2d": dict(attention="local2d", block_h=2, block_w=4, flange_h=2, flange_w=3),
    "full": dict(attention="full"),
}


def tiny(kind="local1d", channels=1, classes=3, size=(5, 6), seed=0):
    """A tiny model with weights scaled up so that its predictions are far from uniform."""
    torch.manual_seed(seed)
    m = ImageTransformer(image_size=list(size), channels=channels, num_classes=classes, d_model=16, heads=2,
                         layers=2, ffn=32, **KINDS[kind]).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)
    return m


def random_images(m, n, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (n, *m.image_shape), dtype=np.uint8)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("channels,classes", [(1, 3), (1, 0), (3, 3), (3, 0)])
def test_cached_sampler_logprobs_equal_teacher_forcing(kind, channels, classes):
    m = tiny(kind, channels, classes)
    labels = torch.tensor([0, 2, 1]) if classes else None
    trace = []
    *_, (images, done) = CachedSampler(m).stream(3, labels, 1.0, 7, None, None, 10_000, trace)
    assert done.all()
    cached = torch.stack(trace, 1)  # (n, N, 256), generation order
    ref = torch.log_softmax(m.logits(images, None if labels is None else labels.numpy()), -1)
    ref = ref.reshape(3, -1, 256)[:, m.order]
    torch.testing.assert_close(cached, ref, rtol=1e-4, atol=1e-4)
    # and the public sample() gives those very images
    np.testing.assert_array_equal(m.sample(3, None if labels is None else [0, 2, 1], seed=7), images)


@pytest.mark.parametrize("kind", list(KINDS))
def test_cached_sampler_equals_full_recompute(kind):
    m = tiny(kind, channels=3, classes=3, size=(3, 4))
    np.testing.assert_array_equal(m.sample(2, [1, 2], seed=3), recompute_sample(m, 2, [1, 2], seed=3))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("channels", [1, 3])
def test_logits_are_causal(kind, channels):
    """Changing positions from generation step t on never changes the logits of earlier steps."""
    m = tiny(kind, channels)
    n = m.num_positions
    order = m.order
    base_img = random_images(m, 1)
    base = m.logits(base_img, [1]).reshape(n, 256)
    for t in (1, n // 2, n - 1):
        img = base_img.reshape(-1).copy()
        img[order[t:].numpy()] = 255 - img[order[t:].numpy()]
        out = m.logits(img.reshape(1, *m.image_shape), [1]).reshape(n, 256)
        torch.testing.assert_close(out[order[: t + 1]], base[order[: t + 1]], rtol=0, atol=0)  # step t sees < t
        if t + 1 < n:
            assert not torch.allclose(out[order[t + 1]], base[order[t + 1]])  # step t+1 does see step t


def test_same_seed_same_image_regardless_of_batch_size():
    m = tiny("local2d", channels=1, classes=3)
    four = m.sample(4, [0, 1, 2, 0], seed=11)
    one = m.sample(1, [0], seed=11)
    np.testing.assert_array_equal(four[0], one[0])
    np.testing.assert_array_equal(m.sample(3, [0, 1, 2], seed=11), four[:3])
    assert not np.array_equal(four[0], four[3])  # same label, different image index -> different draws
    assert not np.array_equal(m.sample(1, [0], seed=12)[0], one[0])


def test_temperature_changes_samples_and_stays_valid():
    m = tiny("local1d")
    cold = m.sample(2, [0, 1], temperature=0.3, seed=0)
    hot = m.sample(2, [0, 1], temperature=1.5, seed=0)
    assert cold.dtype == np.uint8 and cold.shape == (2, 5, 6, 1)
    assert not np.array_equal(cold, hot)


@pytest.mark.parametrize("kind", list(KINDS))
def test_stream_yields_partial_images_then_the_sample(kind):
    m = tiny(kind, channels=3, classes=0)
    frames = list(m.sample_stream(2, seed=4, every=10))
    n = m.num_positions
    assert len(frames) == math.ceil(n / 10)
    counts = [int(done.sum()) for _, done in frames]
    assert counts == sorted(counts) and counts[0] == 10 and counts[-1] == n
    final = frames[-1][0]
    np.testing.assert_array_equal(final, m.sample(2, seed=4))
    for img, done in frames[:-1]:
        np.testing.assert_array_equal(img[:, done], final[:, done])  # generated pixels never change
        assert (img[:, ~done] == 0).all()
    # done follows generation order
    flat_done = frames[0][1].reshape(-1)
    assert flat_done[m.order[:10].numpy()].all() and flat_done.sum() == 10
    # default step: one image row (1D/full) or one query block (2D)
    default = list(m.sample_stream(1, seed=4))
    p = m.pattern
    step = p.block_h * p.block_w if p.kind == "local2d" else m.W * m.C
    assert int(default[0][1].sum()) == min(step, n)


@pytest.mark.parametrize("kind", ["local1d", "local2d"])
def test_completion_keeps_prefix_and_samples_the_rest_from_the_model(kind):
    m = tiny(kind, channels=1, classes=3)
    src = random_images(m, 1, seed=5)[0]
    known = np.zeros(m.num_positions, dtype=bool)
    known[m.order[:13].numpy()] = True
    known = known.reshape(m.image_shape)
    out = m.sample(3, [2, 2, 2], seed=0, prefix=src, known=known)
    assert (out[:, known] == src[known]).all()
    assert len({o.tobytes() for o in out}) == 3  # three different completions
    # the completion's draws are the model's conditional: cached log-probs == teacher forcing on the result
    trace = []
    pre = torch.from_numpy(np.broadcast_to(src, (3, *src.shape)).reshape(3, -1).astype(np.int64))
    kn = torch.from_numpy(np.broadcast_to(known, (3, *known.shape)).reshape(3, -1).copy())
    *_, (img, _) = CachedSampler(m).stream(3, torch.tensor([2, 2, 2]), 1.0, 0, pre, kn, 10_000, trace)
    np.testing.assert_array_equal(img, out)
    ref = torch.log_softmax(m.logits(out, [2, 2, 2]), -1).reshape(3, -1, 256)[:, m.order]
    torch.testing.assert_close(torch.stack(trace, 1), ref, rtol=1e-4, atol=1e-4)


def test_known_must_be_a_prefix_in_generation_order():
    m = tiny("local2d")
    src = random_images(m, 1)[0]
    known = np.zeros(m.image_shape, dtype=bool)
    known[0, :2] = True  # first cells of the first block: a prefix
    m.sample(1, [0], prefix=src, known=known)
    known2 = known.copy()
    known2.reshape(-1)[m.order[20].item()] = True  # a hole
    with pytest.raises(ValueError, match="prefix in generation order"):
        m.sample(1, [0], prefix=src, known=known2)
    rows = np.zeros(m.image_shape, dtype=bool)
    rows[:3] = True  # three full rows is not a prefix of the 2x4 block-raster order ...
    with pytest.raises(ValueError):
        m.sample(1, [0], prefix=src, known=rows)
    rows[:2] = True
    rows[2:] = False  # ... but the first block row (2 rows) is
    m.sample(1, [0], prefix=src, known=rows)


@pytest.mark.parametrize("kwargs", [
    dict(n=0), dict(n=10_000), dict(n=2.5), dict(temperature=0), dict(temperature=-1.0),
    dict(temperature=float("nan")), dict(temperature=float("inf")), dict(temperature="hot"),
    dict(labels=[0, 3]), dict(labels=[0]), dict(labels=[-1, 0]), dict(seed=-1),
    dict(prefix=np.zeros((5, 6, 1), np.uint8)),  # prefix without known
    dict(prefix=np.zeros((5, 5, 1), np.uint8), known=np.zeros((5, 5, 1), bool)),
    dict(prefix=np.zeros((5, 6, 1), np.float32), known=np.zeros((5, 6, 1), bool)),
    dict(prefix=np.zeros((5, 6, 1), np.uint8), known=np.zeros((5, 6, 1), np.uint8)),
    dict(prefix=np.zeros((3, 5, 6, 1), np.uint8), known=np.zeros((5, 6, 1), bool)),
])
def test_bad_sampling_arguments_raise_value_error(kwargs):
    m = tiny("local1d", classes=3)
    args = dict(n=2, labels=[0, 1]) | kwargs
    with pytest.raises(ValueError):
        m.sample(**args)


def test_bad_logits_arguments():
    m = tiny("local1d", classes=3)
    with pytest.raises(ValueError):
        m.logits(np.zeros((1, 5, 6, 1), np.float32), [0])
    with pytest.raises(ValueError):
        m.logits(np.zeros((1, 6, 5, 1), np.uint8), [0])
    with pytest.raises(ValueError):
        m.bits_per_dim(np.zeros((2, 5, 6, 1), np.uint8), [0, 3])
    u = tiny("local1d", classes=0)
    with pytest.raises(ValueError):
        u.logits(np.zeros((1, 5, 6, 1), np.uint8), [0])


def test_bits_per_dim_of_uniform_model_is_8():
    m = tiny("local2d", channels=3)
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.zero_()
    assert m.bits_per_dim(random_images(m, 3), [0, 1, 2]) == pytest.approx(8.0, abs=1e-9)
    assert m.logits(random_images(m, 1), [0]).shape == (1, 5, 6, 3, 256)


def test_bits_per_dim_matches_logits():
    m = tiny("local1d", channels=3)
    imgs = random_images(m, 2)
    logp = torch.log_softmax(m.logits(imgs, [0, 1]).double(), -1)
    nll = -logp.gather(-1, torch.from_numpy(imgs).long()[..., None]).mean().item() / math.log(2)
    assert m.bits_per_dim(imgs, [0, 1], batch_size=1) == pytest.approx(nll, rel=1e-6)


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    m = ImageTransformer(image_size=8, channels=1, num_classes=2, d_model=32, heads=2, layers=2, ffn=64,
                         attention="local2d", block_h=2, block_w=4, flange_h=2, flange_w=2)
    gen = np.random.default_rng(0)
    imgs = (gen.random((8, 8, 8, 1)) < 0.3).astype(np.uint8) * 200  # sparse two-valued images
    labels = np.arange(8) % 2
    before = m.bits_per_dim(imgs, labels)
    x = torch.from_numpy(imgs).reshape(8, -1).long()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(m(x, torch.from_numpy(labels)).flatten(0, 1), x.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = m.bits_per_dim(imgs, labels)
    assert after < before - 3, (before, after)


def test_query_attention_is_real_and_respects_the_pattern():
    m = tiny("local2d", channels=3, classes=3)
    img = random_images(m, 1)[0]
    row, col, ch = 3, 4, 1
    att = m.query_attention(img, 1, row, col, ch, layer=0)
    H, W, C = m.image_shape
    assert att.shape == (m.num_heads, H, W * C) and att.dtype == np.float32
    np.testing.assert_allclose(att.sum((1, 2)), 1.0, rtol=1e-5)
    q = (row * W + col) * C + ch
    allowed = attention_mask(H, W, C, m.pattern)[q].numpy().reshape(H, W * C)
    assert (att[:, ~allowed] == 0).all()
    # the same weights the teacher-forced layer computes
    x = torch.from_numpy(img).reshape(1, -1).long()
    _, bw = m(x, torch.tensor([1]), weights_layer=0)
    np.testing.assert_allclose(att, bw.query_row(q)[0].detach().numpy().reshape(att.shape), rtol=1e-6)
    last = m.query_attention(img, 1, row, col, ch)
    assert not np.allclose(last, att)  # layer -1 differs from layer 0
    for bad in (dict(row=H), dict(col=-1), dict(channel=3), dict(layer=2)):
        with pytest.raises(ValueError):
            m.query_attention(img, 1, **(dict(row=row, col=col, channel=ch) | bad))


def test_api_properties_and_pretrained_round_trip(tmp_path):
    m = tiny("local2d", channels=3, classes=3)
    assert m.image_shape == (5, 6, 3) and m.num_layers == 2 and m.num_heads == 2 and m.class_conditional
    assert m.pattern == AttentionPattern("local2d", 56, 112, 2, 4, 2, 3)
    assert not tiny("local1d", classes=0).class_conditional
    m.save_pretrained(tmp_path)
    back = ImageTransformer.from_pretrained(tmp_path).eval()
    imgs = random_images(m, 2)
    torch.testing.assert_close(back.logits(imgs, [0, 1]), m.logits(imgs, [0, 1]), rtol=0, atol=0)


def test_cache_is_bounded_by_the_blocks_not_the_image():
    p1 = AttentionPattern("local1d", query_len=56, memory_len=112)
    assert cache_slots(28, 28, 1, p1)[1] == cache_slots(64, 64, 3, p1)[1] == 168
    p2 = AttentionPattern("local2d", block_h=4, block_w=14, flange_h=4, flange_w=7)
    assert cache_slots(28, 28, 1, p2)[1] == cache_slots(280, 28, 1, p2)[1] == 8 * 28  # a band of 8 rows
    assert cache_slots(28, 28, 1, AttentionPattern("full"))[1] == 784


def test_sample_stream_checks_arguments_before_iterating():
    m = tiny("local1d")
    with pytest.raises(ValueError):
        m.sample_stream(2, [0, 1], temperature=float("nan"))
    with pytest.raises(ValueError):
        m.sample_stream(2, [0, 1], every=0)


# ---------------------------------------------------------------------------------------------
# one-position step == teacher forcing
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("channels", [1, 3])
@torch.no_grad()
def test_layer_step_in_generation_order_reproduces_the_teacher_forced_layer(kind, channels):
    m = tiny(kind, channels)
    sampler = CachedSampler(m)
    b, n = 2, m.num_positions
    h = torch.randn(b, n, m.d_model, generator=torch.Generator().manual_seed(0))  # (B, N, d), raster order
    for layer in m.layers:
        ref, _ = layer(h, m.image_shape, m.pattern)  # (B, N, d)
        cache = layer.new_cache(b, sampler.size + 1)
        out = torch.full_like(ref, math.nan)
        for p in m.order.tolist():
            sampler.seek([cache], p)
            out[:, p] = layer.step(h[:, p], cache)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        h = ref


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("channels,classes", [(1, 3), (3, 0)])
@torch.no_grad()
def test_model_step_in_generation_order_reproduces_the_teacher_forced_logits(kind, channels, classes):
    m = tiny(kind, channels, classes)
    sampler = CachedSampler(m)
    x = torch.from_numpy(random_images(m, 3)).reshape(3, -1).long()  # (B, N), raster order
    labels = torch.tensor([2, 0, 1]) if classes else None
    ref = m(x, labels)  # (B, N, 256)
    context = m.step_context(labels).expand(3, -1, -1)  # (B, N, d)
    caches = sampler.new_caches(3)
    out = torch.full_like(ref, math.nan)
    order = m.order.tolist()
    for t, p in enumerate(order):
        prev = order[t - 1] if t else None
        sampler.seek(caches, p)
        out[:, p] = m.step(m.step_input(context[:, p], prev, None if prev is None else x[:, prev]), caches)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@torch.no_grad()
def test_step_with_a_hand_made_cache():
    """KVCache is not tied to the sampler's slot layout: one slot per raster position, visible = generated."""
    m = tiny("full", channels=3)
    layer, n = m.layers[0], m.num_positions
    h = torch.randn(1, n, m.d_model, generator=torch.Generator().manual_seed(1))
    ref, _ = layer(h, m.image_shape, m.pattern)
    dh = m.d_model // m.num_heads
    cache = KVCache(torch.zeros(1, m.num_heads, n, dh), torch.zeros(1, m.num_heads, n, dh))
    rank = generation_rank(*m.image_shape, m.pattern)
    for p in m.order.tolist():
        cache.write, cache.visible = p, rank <= rank[p]  # (N,) bool: everything generated so far, p included
        torch.testing.assert_close(layer.step(h[:, p], cache), ref[:, p], rtol=1e-5, atol=1e-5)


def test_sampler_imports_nothing_from_the_model_module():
    tree = ast.parse(Path(sampler_module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    assert not any(name and name.startswith("attn_models.image_transformer") for name in imported), imported


# ---------------------------------------------------------------------------------------------
# prefix_mask
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("channels", [1, 3])
def test_prefix_mask_is_the_longest_generation_order_prefix_inside_the_rows(kind, channels):
    m = tiny(kind, channels, size=(7, 8))
    H, W, C = m.image_shape
    order = m.order.numpy()
    row_of = np.arange(m.num_positions) // (W * C)
    for rows in range(H + 1):
        mask = m.prefix_mask(rows)
        assert mask.shape == (H, W, C) and mask.dtype == np.bool_
        assert not mask[rows:].any()
        flat = mask.reshape(-1)[order]  # generation order
        k = int(flat.sum())
        assert flat[:k].all()  # a prefix
        assert k == m.num_positions or row_of[order[k]] >= rows  # the longest: the next position is outside
    assert m.prefix_mask(0).sum() == 0 and m.prefix_mask(H).all()
    if kind != "local2d":
        assert m.prefix_mask(3)[:3].all()  # raster order: the rows themselves
    else:  # blocks are 2 x 4 positions of the (H, W*C) grid: 3 rows keep block row 0 and the first row of
        grid = m.prefix_mask(3).reshape(H, W * C)  # block 0 of block row 1
        assert grid[:2].all() and grid[2, :4].all() and not grid[2, 4:].any()
    src = random_images(m, 1)[0]
    out = m.sample(2, [0, 1], prefix=src, known=m.prefix_mask(4), seed=2)  # a valid ``known``
    np.testing.assert_array_equal(out[:, m.prefix_mask(4)], np.broadcast_to(src, out.shape)[:, m.prefix_mask(4)])


@pytest.mark.parametrize("rows", [-1, 6, 2.0, True, None, "2"])
def test_prefix_mask_rejects_bad_rows(rows):
    with pytest.raises(ValueError, match="rows"):
        tiny("local1d").prefix_mask(rows)


# ---------------------------------------------------------------------------------------------
# preprocess
# ---------------------------------------------------------------------------------------------

def test_preprocess_inverts_light_backgrounds_and_resizes():
    m = tiny("local1d", size=(28, 28))
    white_bg = np.full((40, 36, 3), 250, np.uint8)
    white_bg[10:30, 10:26] = 20  # a dark object on a light page
    out, note = m.preprocess(white_bg)
    assert out.shape == (28, 28, 1) and out.dtype == np.uint8 and out.flags.writeable
    assert "resized from 36x40 to 28x28" in note and "inverted" in note
    assert out[14, 14, 0] > 200 and out[0, 0, 0] < 20
    same, note = m.preprocess(Image.fromarray(white_bg))  # PIL and numpy agree
    np.testing.assert_array_equal(same, out)


def test_preprocess_undoes_an_exact_enlargement_and_keeps_model_sized_images():
    m = tiny("local1d", size=(28, 28))
    sample = np.zeros((28, 28), np.uint8)  # dark border, like Fashion-MNIST: not inverted
    sample[1:-1, 1:-1] = np.random.default_rng(0).integers(0, 256, (26, 26))
    enlarged = np.repeat(sample.repeat(5, 0).repeat(5, 1)[..., None], 3, -1)  # as saved from the gallery
    out, note = m.preprocess(enlarged)
    assert "reduced 5x" in note and "resized" not in note
    np.testing.assert_array_equal(out[..., 0], sample)  # undone exactly
    out, note = m.preprocess(sample)
    assert note == "" and out.shape == (28, 28, 1)
    np.testing.assert_array_equal(out[..., 0], sample)
    out, note = m.preprocess(sample[..., None])  # (H, W, 1) too
    np.testing.assert_array_equal(out[..., 0], sample)
    blurred = enlarged.copy()
    blurred[0, 0] = 7  # no longer an exact enlargement: resized instead
    assert "resized" in m.preprocess(blurred)[1]


def test_preprocess_for_an_rgb_model():
    m = tiny("local2d", channels=3, size=(8, 8))
    white = np.full((16, 16, 3), 255, np.uint8)
    out, note = m.preprocess(white)
    assert out.shape == (8, 8, 3) and "inverted" not in note and (out == 255).all()  # colour: never inverted
    out, _ = m.preprocess(np.full((16, 16), 90, np.uint8))  # grey -> RGB
    assert out.shape == (8, 8, 3) and (out == 90).all()


@pytest.mark.parametrize("bad,msg", [
    (None, "upload"),
    (np.zeros((0, 0, 3), np.uint8), "expected an image"),
    (np.zeros((0,), np.uint8), "expected an image"),
    (np.zeros((4, 4, 4, 4)), "expected an image"),
    (np.zeros((10, 10, 5), np.uint8), "expected an image"),
    (np.array("a picture"), "expected an image"),
    (np.zeros((1, 1, 3), np.uint8), "too small"),
    (Image.new("RGB", (1, 1)), "too small"),
    (np.zeros((2, 2), np.uint8), "too small"),
    (np.zeros((300, 10, 3), np.uint8), "too far"),
    (np.zeros((10, 3000), np.uint8), "too far"),
])
def test_preprocess_rejects_what_is_not_a_usable_image(bad, msg):
    m = tiny("local1d", size=(28, 28))
    with pytest.raises(ValueError, match=msg):
        m.preprocess(bad)


def test_preprocess_transparency_goes_to_the_black_background():
    m = tiny("local1d", size=(28, 28))
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = 255  # white everywhere, but only the middle is opaque
    rgba[8:20, 8:20, 3] = 255
    for image in (rgba, Image.fromarray(rgba, "RGBA"), Image.fromarray(rgba[..., [0, 3]], "LA")):
        out, note = m.preprocess(image)
        assert "inverted" not in note  # a light item on a (transparent ->) black background
        assert (out[8:20, 8:20] == 255).all() and (out[:8] == 0).all() and (out[20:] == 0).all()
    # and a palette image with a transparent colour
    pal = Image.fromarray(rgba[..., 3] // 255, "P")
    pal.putpalette([255, 255, 255, 200, 200, 200])
    pal.info["transparency"] = 0
    out, _ = m.preprocess(pal)
    assert (out[:8] == 0).all() and (out[8:20, 8:20] == 200).all()


def test_preprocess_keeps_the_brightness_of_16_bit_and_float_images():
    m = tiny("local1d", size=(28, 28))
    img16 = np.zeros((28, 28), np.uint16)
    img16[8:20, 8:20] = 40000  # 16-bit: 40000 / 257 = 155.6, not clipped to 255
    for image in (img16, Image.fromarray(img16), Image.fromarray(img16.astype(np.int32), "I")):
        out, note = m.preprocess(image)
        assert note == "" and (out[8:20, 8:20] == 156).all() and (out[:8] == 0).all()
    unit = img16.astype(np.float32) / 65535  # a float image in [0, 1]
    assert (m.preprocess(unit)[0][8:20, 8:20] == 156).all()
    unit[0, 0] = math.nan  # NaN: treated as black, not an error
    assert m.preprocess(unit)[0][0, 0] == 0
    assert (m.preprocess(img16 > 0)[0][8:20, 8:20] == 255).all()  # boolean masks: white on black
    small = np.full((28, 28), 300, np.int64)  # integers past 255: taken as 16-bit, not clipped to white
    assert (m.preprocess(small)[0] == 1).all()
    assert (m.preprocess(np.full((28, 28), -5.0))[0] == 0).all()  # clipped


def test_preprocess_handles_other_pil_modes():
    m = tiny("local1d", size=(28, 28))
    for mode in ("1", "L", "P", "CMYK", "YCbCr", "I;16B", "F"):
        out, _ = m.preprocess(Image.new(mode, (56, 56)))
        assert out.shape == (28, 28, 1) and out.dtype == np.uint8


def test_preprocess_handles_very_elongated_models():
    m = tiny("local1d", size=(4, 40))  # a 1:10 model
    out, note = m.preprocess(np.zeros((8, 80), np.uint8))
    assert out.shape == (4, 40, 1) and "reduced 2x" in note
    out, note = m.preprocess(np.zeros((40, 4), np.uint8))  # 10:1 is within 4 x 10 of the model's 1:10
    assert out.shape == (4, 40, 1)
    with pytest.raises(ValueError, match="too far"):
        m.preprocess(np.zeros((4, 4000), np.uint8))
