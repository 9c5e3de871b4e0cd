"""Show, Attend and Tell: shapes, decoding, input handling and the signs of the training terms."""
import numpy as np
import pytest
import torch
from PIL import Image

from attn_models.captioning.decoder import ARGMAX, EXPECT, SOFT
from attn_models.captioning.model import ReinforceState, ShowAttendTell, caption_loss

TINY = dict(encoder_channels=8, embed_dim=8, hidden_dim=16, attn_dim=8, dropout=0.0)


def tiny(attention="soft", seed=0, **kw):
    torch.manual_seed(seed)
    return ShowAttendTell(attention=attention, **{**TINY, **kw}).eval()


def scene_image(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((96, 96, 3), np.uint8)
    img[10:38, 50:78] = rng.integers(0, 255, (28, 28, 3))
    return Image.fromarray(img)


def greedy(model, image, max_len):
    """Reference greedy decoder, written independently of beam_search."""
    with torch.no_grad():
        a = model.encode(model.preprocess(image))
        h, c = model.decoder.init_state(a)
        a_proj = model.decoder.project(a)
        y = torch.tensor([model.start_id])
        words, alphas = [], []
        mode = SOFT if model.attention == "soft" else model.hard_context
        for _ in range(max_len):
            o = model.decoder.step(a, a_proj, y, h, c, mode)
            logits = o.logits.clone()
            logits[:, model.banned_ids] = float("-inf")
            y = logits.argmax(-1)
            if int(y) == model.end_id:
                break
            words.append(model.vocab[int(y)])
            alphas.append(o.alpha[0].numpy())
            h, c = o.h, o.c
    return words, alphas


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_caption_shapes_and_alphas_sum_to_one(attention):
    m = tiny(attention)
    cap = m.caption(scene_image(), beam_size=3, max_len=12)
    assert m.grid_hw == (12, 12) and m.attention_kind == attention
    assert 1 <= len(cap.words) <= 12
    assert all(w in m.vocab and not w.startswith("<") for w in cap.words)
    assert cap.alphas.shape == (len(cap.words), 12, 12)
    assert np.allclose(cap.alphas.sum(axis=(1, 2)), 1.0, atol=1e-5) and (cap.alphas >= 0).all()
    assert cap.betas.shape == (len(cap.words),) and ((cap.betas > 0) & (cap.betas < 1)).all()


@pytest.mark.parametrize("attention,hard_context", [("soft", ARGMAX), ("hard", ARGMAX), ("hard", EXPECT)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_one_is_greedy(attention, hard_context, seed):
    m = tiny(attention, seed=seed, hard_context=hard_context)
    img = scene_image(seed)
    ref_words, ref_alphas = greedy(m, img, 15)
    cap = m.caption(img, beam_size=1, max_len=15)
    assert cap.words == ref_words
    if ref_alphas:
        assert np.allclose(cap.alphas.reshape(len(ref_words), -1), np.stack(ref_alphas), atol=1e-5)


def test_beam_search_deterministic_and_not_worse_than_greedy():
    m = tiny(seed=3)
    img = scene_image(3)
    a, b = m.caption(img, beam_size=5), m.caption(img, beam_size=5)
    assert a.words == b.words and np.array_equal(a.alphas, b.alphas)


def test_max_len_without_end_does_not_crash():
    m = tiny(seed=4)
    with torch.no_grad():
        m.decoder.out_o.bias[m.end_id] = -1e4  # <end> never wins
    for beam in (1, 4):
        cap = m.caption(scene_image(), beam_size=beam, max_len=7)
        assert len(cap.words) == 7 and cap.alphas.shape[0] == 7


def test_hard_attention_is_one_hot_at_test_time():
    m = tiny("hard", seed=5)
    assert m.hard_context == ARGMAX and m.test_mode == ARGMAX  # the default, as configs without the key load
    cap = m.caption(scene_image(5), beam_size=2, max_len=10)
    flat = cap.alphas.reshape(len(cap.words), -1)
    assert np.all(flat.max(1) == 1.0) and np.all((flat == 0) | (flat == 1))


def test_hard_attention_with_the_expected_context_decodes_like_a_soft_model_of_the_same_weights():
    """hard_context="expect" (the authors' test-time decoding): the context is Σ α_i a_i, so the same weights in a
    soft model give the same caption and maps, which are distributions rather than one-hot."""
    hard = tiny("hard", seed=5, hard_context=EXPECT)
    soft = tiny("soft", seed=5)
    soft.load_state_dict(hard.state_dict())
    img = scene_image(5)
    a, b = hard.caption(img, beam_size=3, max_len=10), soft.caption(img, beam_size=3, max_len=10)
    assert a.words == b.words and np.array_equal(a.alphas, b.alphas)
    assert (a.alphas.reshape(len(a.words), -1).max(1) < 1).all()
    # the argmax decoding of the same weights attends one cell per word
    hard.hard_context = ARGMAX
    flat = hard.caption(img, beam_size=3, max_len=10).alphas.reshape(-1, 144)
    assert np.all((flat == 0) | (flat == 1))


def test_hard_context_is_checked_and_travels_with_the_weights(tmp_path):
    with pytest.raises(ValueError, match="hard_context"):
        tiny("hard", hard_context="sample")
    m = tiny("hard", seed=6, hard_context=EXPECT)
    m.save_pretrained(tmp_path)
    assert ShowAttendTell.from_pretrained(tmp_path).test_mode == EXPECT


def test_flip_average_is_the_mean_of_both_views_and_mirrors_with_the_image(tmp_path):
    """encoder_flip_average: the grid is (g(x) + mirror(g(mirror x))) / 2, so mirroring the image mirrors the
    annotations exactly (the coordinate channels, fixed, excepted); the flag travels with the weights."""
    m = tiny(seed=7, encoder_flip_average=True)
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        a = m.encode(x)
        g, g_mirrored = m.encoder(x), m.encoder(x.flip(-1)).flip(-1)
        assert not torch.allclose(g, g_mirrored, atol=1e-4)  # the two views differ, so the mean is a real change
        features = a[..., :-2].transpose(1, 2).reshape(g.shape)
        torch.testing.assert_close(features, (g + g_mirrored) / 2)
        mirrored = m.encode(x.flip(-1))[..., :-2].transpose(1, 2).reshape(g.shape)
        torch.testing.assert_close(mirrored, features.flip(-1))
        plain = tiny(seed=7).encode(x)[..., :-2].transpose(1, 2).reshape(g.shape)
        torch.testing.assert_close(plain, g)
    m.save_pretrained(tmp_path)
    assert ShowAttendTell.from_pretrained(tmp_path).encoder_flip_average is True


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "I;16", "CMYK", "1", "F", "LA"])
def test_any_mode_and_size(mode):
    m = tiny()
    base = scene_image().resize((123, 57))
    img = base.convert("I;16") if mode == "I;16" else base.convert(mode)
    cap = m.caption(img, beam_size=2, max_len=5)
    assert cap.alphas.shape[1:] == (12, 12)
    assert m.caption(Image.new("RGB", (1, 1)), beam_size=1, max_len=3).alphas.shape[1:] == (12, 12)


@pytest.mark.parametrize("kw", [dict(beam_size=0), dict(beam_size=51), dict(beam_size=2.5), dict(max_len=0),
                                dict(max_len=101), dict(beam_size=True)])
def test_bad_arguments(kw):
    with pytest.raises(ValueError):
        tiny().caption(scene_image(), **kw)


@pytest.mark.parametrize("bad", [None, np.zeros((96, 96, 3), np.uint8), "scene.png", b"\x89PNG"])
def test_not_an_image(bad):
    with pytest.raises(ValueError):
        tiny().caption(bad)


def test_save_and_load_roundtrip(tmp_path):
    m = tiny("hard", seed=6)
    m.save_pretrained(tmp_path)
    m2 = ShowAttendTell.from_pretrained(tmp_path).eval()
    assert m2.attention_kind == "hard" and m2.vocab == m.vocab
    img = scene_image(6)
    assert m.caption(img).words == m2.caption(img).words


# ---- training terms ---------------------------------------------------------------------------------
def toy_batch(model, n=16, locations=4, seed=0):
    """Annotations whose location 0 holds a one-hot of the caption's single word; others are noise."""
    g = torch.Generator().manual_seed(seed)
    dim = model.decoder.att_a.in_features
    words = [model.vocab[i] for i in range(4, 12)]
    targets = torch.randint(0, len(words), (n,), generator=g)
    a = 0.1 * torch.randn(n, locations, dim, generator=g)
    a[torch.arange(n), 0, targets] += 3.0
    tokens = model.tokenize([[words[int(t)]] for t in targets])
    return a, tokens


def train_steps(model, a, tokens, steps, lr=0.03, **kw):
    opt = torch.optim.Adam(model.decoder.parameters(), lr=lr)
    model.train()
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss, stats = caption_loss(model, a, tokens, generator=g, **kw)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    return stats


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_few_steps_reduce_loss(attention):
    m = tiny(attention, seed=7, coord_channels=False)
    a, tokens = toy_batch(m)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        before, _ = caption_loss(m, a, tokens, generator=g, expect_prob=1.0)
    train_steps(m, a, tokens, 40, reinforce=ReinforceState())
    with torch.no_grad():
        after, _ = caption_loss(m, a, tokens, generator=g, expect_prob=1.0)
    assert after < 0.5 * before


def attention_on_location0(model, a, tokens):
    with torch.no_grad():
        out = model.decoder(a, tokens[:, :-1], mode=SOFT)
    return float(out["alphas"][:, 0, 0].mean())


@pytest.mark.parametrize("reward", ["sentence", "to_go"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_reinforce_moves_attention_towards_rewarding_location(sign, reward):
    """Only REINFORCE trains the attention when every caption uses a sampled location
    (expect_prob=0): the informative location must gain mass; with the sign flipped it must lose it."""
    m = tiny("hard", seed=8, coord_channels=False)
    a, tokens = toy_batch(m, n=32)
    start = attention_on_location0(m, a, tokens)
    train_steps(m, a, tokens, 150, lr=0.02, reinforce=ReinforceState(), reinforce_weight=sign,
                entropy_weight=0.0, expect_prob=0.0, reward=reward)
    end = attention_on_location0(m, a, tokens)
    if sign > 0:
        assert end > max(0.6, start + 0.2)
    else:
        assert end < start


def test_reward_to_go_weights_each_location_by_the_words_after_it():
    """R_t = sum_{t'>=t} log p(y_t'); the per-position baseline starts at the first batch's mean and
    then moves by the paper's 0.9/0.1 average; padded words and expected-context captions don't count."""
    from attn_models.captioning.model import _reinforce_to_go

    log_p_tok = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    log_p_loc = torch.tensor([[-1.0, -1.0, -1.0], [-2.0, -2.0, -2.0]], requires_grad=True)
    state = ReinforceState()
    rl, _ = _reinforce_to_go(log_p_tok, log_p_loc, mask, torch.tensor([1.0, 0.0]), state)
    assert state.baseline == pytest.approx([-6.0, -5.0, -3.0])  # caption 1 is not sampled: ignored
    assert float(rl) == pytest.approx(0.0)  # reward == baseline
    rl, b0 = _reinforce_to_go(log_p_tok, log_p_loc, mask, torch.tensor([1.0, 1.0]), state)
    assert b0 == pytest.approx(-6.0)
    # advantages: caption 0 -> 0, 0, 0; caption 1 (to go -1, -0.5, pad) -> 5, 4.5, (masked)
    rl.backward()
    assert log_p_loc.grad[1].tolist() == pytest.approx([-5.0 / 2, -4.5 / 2, 0.0])
    assert log_p_loc.grad[0].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-5)
    assert state.baseline == pytest.approx([0.9 * -6 + 0.1 * -3.5, 0.9 * -5 + 0.1 * -2.75, -3.0])


def test_discounted_reward_to_go():
    """discount 0 weights each location by its own word only; 0.5 halves each later word's weight."""
    from attn_models.captioning.model import _reinforce_to_go

    log_p_tok = torch.tensor([[-1.0, -2.0, -4.0]])
    mask, sampled = torch.ones(1, 3), torch.ones(1)
    for discount, expect in [(0.0, [-1.0, -2.0, -4.0]), (0.5, [-3.0, -4.0, -4.0]), (1.0, [-7.0, -6.0, -4.0])]:
        state = ReinforceState()
        _reinforce_to_go(log_p_tok, torch.zeros(1, 3), mask, sampled, state, discount)
        assert state.baseline == pytest.approx(expect)  # first batch: the baseline is the reward itself


@pytest.mark.parametrize("lam", [5.0, -5.0])
def test_doubly_stochastic_penalty_sign(lam):
    """Penalty alone, from peaked attention: a positive weight lowers sum_i (1 - sum_t alpha_ti)^2."""
    m = tiny("soft", seed=9, coord_channels=False)
    a, tokens = toy_batch(m, n=8)
    with torch.no_grad():
        m.decoder.att_v.weight.mul_(30.0)  # peaked start
    _, s0 = caption_loss(m, a, tokens, ds_lambda=1.0)
    opt = torch.optim.SGD(m.decoder.parameters(), lr=0.01)
    m.train()
    for _ in range(15):
        with_penalty, _ = caption_loss(m, a, tokens, ds_lambda=lam)
        without, _ = caption_loss(m, a, tokens, ds_lambda=0.0)  # dropout is 0: same forward
        opt.zero_grad()
        (with_penalty - without).backward()  # the penalty term of the objective, alone
        opt.step()
    _, s1 = caption_loss(m.eval(), a, tokens, ds_lambda=1.0)
    if lam > 0:
        assert s1["ds_penalty"] < s0["ds_penalty"] - 0.05
    else:
        assert s1["ds_penalty"] >= s0["ds_penalty"] - 1e-6


@pytest.mark.parametrize("name", ["sat-soft-fashion-scenes", "sat-hard-fashion-scenes"])
def test_shipped_weights_caption_test_scenes(name, fashion_mnist):
    """The bundled models load by name (strict keys) and name items of test scenes far above chance
    (1/80 per item); the bars sit below the model cards (object recall 0.897 soft, 0.909 hard on 2,000 scenes)."""
    from attn_models import load
    from attn_models.data.scenes import fixed_test_set, object_recall
    from attn_models.registry import get_spec

    if not (get_spec(name).local_dir / "model.safetensors").exists():
        pytest.skip(f"{name} weights not shipped yet")
    m = load(name, device="cpu", source="local")
    assert m.attention_kind == ("soft" if "soft" in name else "hard") and m.grid_hw == (12, 12)
    named = total = 0
    for s in fixed_test_set(12):
        cap = m.caption(Image.fromarray(s.image), beam_size=3)
        n, t = object_recall(s, cap.words)
        named, total = named + n, total + t
        assert np.allclose(cap.alphas.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert named / total >= 0.7
