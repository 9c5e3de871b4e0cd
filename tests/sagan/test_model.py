"""SAGAN library: attention block, spectral norm, generator contract, one training step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attn_models.sagan.attention import SelfAttention2d
from attn_models.sagan.model import SAGAN, latent
from attn_models.sagan.networks import Discriminator, Generator
from attn_models.sagan.train import EMA, make_optimizers, standing_stats, train_step


@pytest.mark.parametrize("variant,key_hw", [("official", (4, 4)), ("paper", (8, 8))])
def test_attention_rows_sum_to_one_and_grids(variant, key_hw):
    torch.manual_seed(0)
    block = SelfAttention2d(32, variant)
    x = torch.randn(3, 32, 8, 8)
    y, beta = block(x, return_attn=True)
    assert y.shape == x.shape
    assert beta.shape == (3, 64, key_hw[0] * key_hw[1])
    assert block.key_hw(8, 8) == key_hw
    assert torch.all(beta >= 0)
    torch.testing.assert_close(beta.sum(-1), torch.ones(3, 64))


def test_attention_widths_follow_variant():
    off, pap = SelfAttention2d(64, "official"), SelfAttention2d(64, "paper")
    assert off.h(torch.zeros(1, 64, 4, 4)).shape[1] == 32  # C/2 value in the official code
    assert pap.h(torch.zeros(1, 64, 4, 4)).shape[1] == 8  # C/8 value in the paper
    for conv in (off.f, off.g, off.h, off.v):
        assert hasattr(conv, "parametrizations"), "every 1x1 conv of the official block is spectrally normalised"
    with pytest.raises(ValueError):
        SelfAttention2d(64, "bogus")


def test_gamma_zero_is_identity_and_nonzero_is_not():
    torch.manual_seed(0)
    block = SelfAttention2d(16)
    x = torch.randn(2, 16, 8, 8)
    assert block.gamma.item() == 0.0  # initialised to 0
    torch.testing.assert_close(block(x), x)
    with torch.no_grad():
        block.gamma.fill_(0.7)
    assert not torch.allclose(block(x), x)
    torch.testing.assert_close(block(x, attention_off=True), x)  # per-call switch
    assert block.gamma.item() == pytest.approx(0.7)  # ... that leaves the parameter alone


def test_spectral_norm_keeps_top_singular_value_near_one():
    torch.manual_seed(0)
    d = Discriminator(ch=8).train()
    conv = d.blocks[1].conv1
    with torch.no_grad():
        conv.parametrizations.weight.original.mul_(5.0)  # raw weight far from unit norm
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 10, (4,))
    for _ in range(30):  # power iteration converges over forward passes in train mode
        d(x, y)
    w = conv.weight.detach().flatten(1)  # the normalised weight the layer uses
    raw = conv.parametrizations.weight.original.detach().flatten(1)
    assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)
    assert torch.linalg.matrix_norm(raw, ord=2).item() > 1.2  # so the check above is not vacuous


def test_generator_shape_and_range():
    g = Generator(ch=8).eval()
    x = g(torch.randn(5, g.z_dim) * 10, torch.arange(5))
    assert x.shape == (5, 1, 32, 32)
    assert x.min() >= -1 and x.max() <= 1
    g64 = Generator(img_size=64, img_channels=3, ch=8, attn_res=[32]).eval()
    assert g64(torch.randn(2, g64.z_dim), torch.tensor([0, 1])).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError):
        Generator(attn_res=[64])


@pytest.fixture(scope="module")
def sagan():
    torch.manual_seed(0)
    m = SAGAN(ch=8)
    standing_stats(m.generator, batches=2, batch_size=8)  # non-trivial running stats
    with torch.no_grad():
        m.generator.attn["16"].gamma.fill_(0.5)
    return m.eval()


def test_generate_contract(sagan):
    out = sagan.generate([0, 3, 9], seed=5)
    assert out.images.shape == (3, 32, 32, 1) and out.images.dtype == np.uint8
    assert out.query_hw == (16, 16) and out.key_hw == (8, 8)
    assert out.attention.shape == (3, 256, 64)
    np.testing.assert_allclose(out.attention.sum(-1), 1.0, atol=1e-5)
    assert out.gamma == pytest.approx(0.5) and out.gammas == {"16": pytest.approx(0.5)}


def test_generate_determinism_and_image_k_property(sagan):
    a = sagan.generate([1, 2, 3], seed=7)
    b = sagan.generate([1, 2, 3], seed=7)
    np.testing.assert_array_equal(a.images, b.images)
    more = sagan.generate([1, 8, 3, 4, 5, 6], seed=7)  # more images, and image 1's label changed
    np.testing.assert_array_equal(more.images[0], a.images[0])
    np.testing.assert_array_equal(more.images[2], a.images[2])
    np.testing.assert_allclose(more.attention[2], a.attention[2], atol=1e-6)
    assert not np.array_equal(sagan.generate([1, 2, 3], seed=8).images, a.images)
    assert not torch.equal(latent(0, 1, 16), latent(1, 0, 16))


def test_attention_off_changes_image_without_mutating_model(sagan):
    on = sagan.generate([4], seed=1)
    off = sagan.generate([4], seed=1, attention_off=True)
    assert off.gamma == 0.0 and not np.array_equal(on.images, off.images)
    np.testing.assert_array_equal(sagan.generate([4], seed=1).images, on.images)
    assert sagan.gammas["16"] == pytest.approx(0.5)


@pytest.mark.parametrize("labels,seed", [([10], 0), ([-1], 0), ([], 0), ([1], -1), ([1], 2 ** 32), ([1], 1.5),
                                         (["x"], 0)])
def test_generate_rejects_bad_input(sagan, labels, seed):
    with pytest.raises(ValueError):
        sagan.generate(labels, seed=seed)


def test_interpolation_endpoints_match_seeds(sagan):
    path = sagan.interpolate(2, 11, 12, steps=4)
    assert path.images.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(path.images[0], sagan.generate([2], seed=11).images[0])
    np.testing.assert_array_equal(path.images[-1], sagan.generate([2], seed=12).images[0])


def test_no_attention_model_generates():
    m = SAGAN(ch=8, attn_res=[]).eval()
    out = m.generate([0, 1])
    assert out.images.shape == (2, 32, 32, 1) and out.attention.shape == (2, 0, 0) and out.gammas == {}


def test_one_training_step_changes_both_nets_and_losses_finite():
    torch.manual_seed(0)
    g, d = Generator(ch=8), Discriminator(ch=8)
    opt_g, opt_d = make_optimizers(g, d)
    g0 = {k: v.clone() for k, v in g.state_dict().items()}
    d0 = {k: v.clone() for k, v in d.state_dict().items()}
    ema = EMA(g)
    stats = train_step(g, d, opt_g, opt_d, torch.rand(8, 1, 32, 32) * 2 - 1, torch.randint(0, 10, (8,)))
    assert all(np.isfinite(v) for v in stats.values())
    key_g = "linear.parametrizations.weight.original"
    key_d = "linear.parametrizations.weight.original"
    assert not torch.equal(g.state_dict()[key_g], g0[key_g])
    assert not torch.equal(d.state_dict()[key_d], d0[key_d])
    assert all(p.requires_grad for p in d.parameters())
    ema.update(g, 0)
    assert not torch.equal(ema.model.linear.parametrizations.weight.original, g0[key_g])


def test_projection_discriminator_uses_label():
    torch.manual_seed(0)
    d = Discriminator(ch=8).eval()
    with torch.no_grad():
        d.embed.parametrizations.weight.original.normal_()
    x = torch.randn(4, 1, 32, 32).repeat(2, 1, 1, 1)
    s = d(x, torch.tensor([0, 1, 2, 3, 4, 5, 6, 7]))
    assert not torch.allclose(s[:4], s[4:])


def test_js_divergence_bounds():
    from attn_models.sagan.metrics import js_divergence

    p = np.array([0.5, 0.5, 0.0, 0.0])
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(p, np.array([0.0, 0.0, 0.5, 0.5])) == pytest.approx(1.0)  # disjoint: 1 bit
    q = np.array([0.25, 0.25, 0.25, 0.25])
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p)) and 0 < js_divergence(p, q) < 1


def test_query_dependence_tells_query_driven_from_image_driven_maps():
    from attn_models.sagan.metrics import query_dependence

    rng = np.random.default_rng(0)
    n, q, k = 12, 16, 9
    # image-driven: every query of an image has the same map (Cao et al.'s finding), maps differ across images
    per_image = rng.dirichlet(np.ones(k), size=n)
    image_driven = np.repeat(per_image[:, None], q, axis=1)
    # query-driven: query i looks at key i % k in every image
    query_driven = np.tile(np.eye(k)[np.arange(q) % k][None], (n, 1, 1)) * 0.9 + 0.1 / k
    a, b = query_dependence(image_driven), query_dependence(query_driven)
    assert a["within_image"] == pytest.approx(0.0, abs=1e-12) and a["across_images"] > 0.05
    assert b["across_images"] == pytest.approx(0.0, abs=1e-12) and b["within_image"] > 0.3
    assert a["ratio"] < 1e-6 < b["ratio"]
    with pytest.raises(ValueError):
        query_dependence(image_driven[:1])


def test_ablation_arms_are_summarised_over_runs(tmp_path, fashion_mnist):
    """`evaluate --arm LABEL=DIR,DIR`: each run scored, then mean +- std per arm (tiny models, few images)."""
    import json

    from attn_models.sagan import evaluate

    for i, res in enumerate(([16], [16], [], [])):
        torch.manual_seed(i)
        SAGAN(ch=8, z_dim=16, attn_res=res).eval().save_pretrained(tmp_path / f"m{i}")
    out = tmp_path / "m.json"
    evaluate.main([str(tmp_path / "m0"), "--per-class", "3", "--query-images", "2", "--json", str(out),
                   "--arm", f"attention={tmp_path / 'm0'},{tmp_path / 'm1'}",
                   "--arm", f"none={tmp_path / 'm2'},{tmp_path / 'm3'}"])
    result = json.loads(out.read_text())
    attention, none = result["arms"]["attention"], result["arms"]["none"]
    fids = [result["rows"][str(tmp_path / f"m{i}")]["fid"] for i in (0, 1)]
    assert attention["fid"] == pytest.approx(np.mean(fids)) and attention["fid_std"] == pytest.approx(np.std(fids))
    assert "query_jsd_within_image" in attention and "query_jsd_within_image" not in none
    with pytest.raises(SystemExit):
        evaluate.parse_arms(["no-equals-sign"])


def test_knockout_changes_only_what_that_query_feeds_and_checks_its_index(sagan):
    """Zeroing one query's attention output: the block's output there equals its input; the image changes, and
    knocking out with gamma 0 changes nothing."""
    block = sagan.generator.attn["16"]
    x = torch.randn(2, 16, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = block(x)
        y_ko = block(x, knockout=37)
    qy, qx = divmod(37, 16)
    torch.testing.assert_close(y_ko[:, :, qy, qx], x[:, :, qy, qx])
    assert not torch.allclose(y[:, :, qy, qx], x[:, :, qy, qx])
    other = torch.ones(16, 16, dtype=torch.bool)
    other[qy, qx] = False
    torch.testing.assert_close(y_ko[:, :, other], y[:, :, other])  # only that position's output moved
    base, ko = sagan.generate([3], seed=2), sagan.generate([3], seed=2, knockout=37)
    assert not np.array_equal(base.images, ko.images)
    np.testing.assert_allclose(ko.attention, base.attention, atol=1e-6)  # the maps of that layer are unchanged
    for bad in (-1, 256, 1.5, True):
        with pytest.raises(ValueError):
            sagan.generate([3], seed=2, knockout=bad)
    with pytest.raises(ValueError):
        SAGAN(ch=8, attn_res=[]).eval().generate([0], knockout=0)


def test_discriminate_scores_and_attention():
    torch.manual_seed(1)
    m = SAGAN(ch=8, d_attn_res=[16]).eval()
    with torch.no_grad():
        m.discriminator.attn["16"].gamma.fill_(0.3)
    images = m.generate([0, 1, 2], seed=0).images
    out = m.discriminate(images, [0, 1, 2])
    assert m.has_discriminator and out.scores.shape == (3,) and np.isfinite(out.scores).all()
    assert out.attention.shape == (3, 256, 64) and out.query_hw == (16, 16) and out.key_hw == (8, 8)
    np.testing.assert_allclose(out.attention.sum(-1), 1.0, atol=1e-5)
    assert out.gamma == pytest.approx(0.3) and out.gammas == {"16": pytest.approx(0.3)}
    # image k's verdict depends on image k and its label only, and the label matters (projection)
    one = m.discriminate(images[1:2], [1])
    np.testing.assert_allclose(one.scores[0], out.scores[1], rtol=1e-5, atol=1e-5)
    assert m.discriminate(images[1:2], [7]).scores[0] != pytest.approx(one.scores[0])
    np.testing.assert_allclose(m.discriminate(images[..., 0], [0, 1, 2]).scores, out.scores)  # (N, S, S) too
    for bad_images, labels in [(images[:, :28, :28], [0, 1, 2]), (images.astype(np.float32), [0, 1, 2]),
                               (images, [0, 1]), (images, [0, 1, 10])]:
        with pytest.raises(ValueError):
            m.discriminate(bad_images, labels)
    with pytest.raises(ValueError, match="no discriminator"):
        SAGAN(ch=8).discriminate(images, [0, 1, 2])
