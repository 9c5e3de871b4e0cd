"""Faithfulness tests of attention maps: the pieces (attended cells, occlusion, pooling, Spearman), teacher-forced
scoring against the beam's own scores, and models built by hand whose words depend on one known cell."""
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from attn_models.captioning import faithfulness as fa
from attn_models.captioning.model import ShowAttendTell
from tests.captioning.test_model import scene_image, tiny

RED_CELL = (4, 7)  # the grid cell (row, column) holding the red patch


# ---- pieces ----------------------------------------------------------------------------------------------------
def test_attended_cells_are_the_fewest_holding_half_the_mass():
    alpha = np.array([0.05, 0.3, 0.1, 0.25, 0.3])
    assert fa.attended_cells(alpha).tolist() == [1, 4]  # 0.6 >= 0.5; ties: lower index first
    assert fa.attended_cells(np.array([0.0, 1.0, 0.0])).tolist() == [1]  # hard attention: its one cell
    assert fa.attended_cells(np.array([0.2, 0.3, 0.5])).tolist() == [2]  # exactly half is enough
    assert len(fa.attended_cells(np.full(144, 1 / 144))) == 72


def test_random_cells_avoid_the_attended_ones_and_are_seeded():
    hidden = np.array([3, 9, 10])
    a, overlaps = fa.random_cells(144, hidden, 3, 6, np.random.default_rng((0, 2)))
    b, _ = fa.random_cells(144, hidden, 3, 6, np.random.default_rng((0, 2)))
    c, _ = fa.random_cells(144, hidden, 3, 6, np.random.default_rng((1, 2)))
    assert a.shape == (6, 3) and not overlaps and not np.isin(a, hidden).any()
    assert all(len(set(row)) == 3 for row in a.tolist())
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    spread, overlaps = fa.random_cells(10, np.arange(7), 7, 2, np.random.default_rng(0))
    assert overlaps and spread.shape == (2, 7)  # only 3 cells outside: drawn among all


def test_occlusion_fills_exactly_the_cells_pixels_with_the_background():
    x = torch.rand(3, 96, 96)
    bg = torch.tensor([0.1, 0.2, 0.3])
    out = fa.occlude(x, np.array([0, 12 * 4 + 7]), (12, 12), bg)
    changed = (out != x).any(0)
    expected = torch.zeros(96, 96, dtype=torch.bool)
    expected[0:8, 0:8] = expected[32:40, 56:64] = True
    assert torch.equal(changed, expected)
    assert torch.equal(out[:, 32:40, 56:64], bg[:, None, None].expand(3, 8, 8))
    assert torch.equal(x, x.clone())  # the input is left alone
    uneven = fa.occlude(torch.ones(3, 10, 7), np.array([4]), (3, 2), torch.zeros(3))  # cells of unequal sizes
    assert (uneven == 0).sum() == 3 * (6 - 3) * (7 - 3)  # row 1 is pixels 3..5, column 0 is pixels 0..2


def test_background_is_the_median_border_colour():
    scene = torch.zeros(1, 3, 96, 96)
    scene[:, 0, 0:30, 0:30] = 1.0  # an item touching the corner: still a black background
    assert fa.border_background(scene)[0].tolist() == [0.0, 0.0, 0.0]
    photo = torch.rand(1, 3, 50, 40) * 0.1
    photo[:, :, 0, :] = photo[:, :, -1, :] = photo[:, :, :, 0] = photo[:, :, :, -1] = torch.tensor([0.2, 0.5, 0.9])[
        :, None]
    assert fa.border_background(photo)[0].tolist() == pytest.approx([0.2, 0.5, 0.9])


def test_pooling_and_spearman():
    pixels = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert fa.pool_to_grid(pixels, (2, 2)).tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7],
                                                         [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    assert fa.spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert fa.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert fa.spearman([1, 1, 2, 3], [5, 6, 7, 8]) == pytest.approx(np.corrcoef([1.5, 1.5, 3, 4], [1, 2, 3, 4])[0, 1])
    assert np.isnan(fa.spearman([1, 1, 1], [1, 2, 3]))


# ---- scoring ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attention,hard_context", [("soft", "argmax"), ("hard", "argmax"), ("hard", "expect")])
def test_teacher_forcing_reproduces_the_beam_scores_and_maps(attention, hard_context):
    """Scored the way the model decodes (hard attention: its test-time context), each hypothesis of the beam gets
    back its log-probability and its maps."""
    m = tiny(attention, seed=11, hard_context=hard_context)
    img = scene_image(11)
    x = m.preprocess(img)
    for beam in m.caption_beams(img, beam_size=3, max_len=8):
        with torch.no_grad():
            log_p, alphas = fa.teacher_forced(m, x, beam.words)
        n = len(beam.words) + int(beam.ended)
        assert float(log_p[0, :n].sum()) == pytest.approx(beam.log_prob, abs=1e-4)
        np.testing.assert_allclose(alphas[0, :len(beam.words)].reshape(beam.alphas.shape).numpy(), beam.alphas,
                                   atol=1e-5)


def test_unknown_words_are_refused():
    with pytest.raises(ValueError, match="outside the model's vocabulary: 'zebra'"):
        fa.token_ids(tiny(), ["red", "zebra"])
    with pytest.raises(ValueError, match="draws"):
        fa.faithfulness(tiny(), scene_image(), ["red"], draws=0)
    with pytest.raises(ValueError, match="positions"):
        fa.faithfulness(tiny(), scene_image(), ["red"], positions=[3])


# ---- models whose word depends on one known cell -----------------------------------------------------------------
class CellMeans(nn.Module):
    """An 'encoder' whose annotation of each 8x8 cell is its mean colour: what a word sees is exactly its cells."""

    out_channels = 3

    def forward(self, x):
        return nn.functional.avg_pool2d(x, 8)


def red_word_model(attention: str, look_at_red: bool = True) -> ShowAttendTell:
    """p("red") rises with the redness of the attended context; attention goes to the reddest cell (or, with
    ``look_at_red=False``, to the bluest). Every other weight is zero, so nothing else moves the word."""
    m = ShowAttendTell(attention=attention, coord_channels=False, encoder_channels=3, embed_dim=4, hidden_dim=4,
                       attn_dim=2, dropout=0.0).eval()
    m.encoder = CellMeans()
    d = m.decoder
    with torch.no_grad():
        for p in d.parameters():
            p.zero_()
        d.att_a.weight[0, 0 if look_at_red else 2] = 10.0  # score_i = 20 tanh(10 * channel_i)
        d.att_v.weight[0, 0] = 20.0
        d.f_beta.bias.fill_(10.0)  # the gate open: β ~ 1
        d.out_z.weight[0, 0] = 5.0  # redness of the context -> embedding unit 0
        d.out_o.weight[m.word_to_id["red"], 0] = 10.0  # -> the logit of "red"
    return m


def red_patch_image(blue: bool = False) -> Image.Image:
    img = np.zeros((96, 96, 3), np.uint8)
    r, c = RED_CELL
    img[r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = (255, 0, 0)
    if blue:
        img[80:88, 8:16] = (0, 0, 255)  # cell (10, 1)
    return Image.fromarray(img)


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_hiding_the_evidence_the_word_looked_at_costs_it_probability(attention):
    """The only red of the image is the cell the word attends: hiding it must cost "red" most of its probability,
    and hiding random other (black) cells nothing. Were attended and random swapped, both assertions would fail."""
    m = red_word_model(attention)
    res = fa.faithfulness(m, red_patch_image(), ["red"], draws=4, seed=3)
    assert res.words == ["red"] and res.background.tolist() == [0.0, 0.0, 0.0]
    (w,) = res.tests
    assert w.hidden_cells.tolist() == [list(RED_CELL)] and w.hidden_mass > 0.99
    assert w.log_prob > np.log(0.9)  # the red context makes "red" near certain
    assert w.drop_attended > 3.0  # ... hidden: back to about 1/vocabulary
    assert w.drops_random.shape == (4,) and np.abs(w.drops_random).max() < 1e-6
    assert w.drop_attended > w.drop_random + 3.0
    assert not np.isin(w.random_cells[:, :, 0] * 12 + w.random_cells[:, :, 1], 4 * 12 + 7).any()
    # the gradient of log p("red") lives in the red cell, where α is
    assert np.unravel_index(w.saliency.argmax(), w.saliency.shape) == RED_CELL
    assert w.saliency.sum() == pytest.approx(1.0) and w.rank_correlation > 0


def test_a_map_that_looks_elsewhere_loses_nothing_when_its_cells_are_hidden():
    """Attention on a blue cell while the word's evidence (red) sits elsewhere: hiding the attended cell costs the
    word nothing (attention then spreads over the black cells and the red one, so "red" even gains a little)."""
    m = red_word_model("soft", look_at_red=False)
    (w,) = fa.faithfulness(m, red_patch_image(blue=True), ["red"], draws=3).tests
    assert w.hidden_cells.tolist() == [[10, 1]]
    assert w.drop_attended < 0 and w.log_prob < np.log(0.1)


def test_deterministic_for_an_input_and_seed():
    m = tiny(seed=12)
    img = scene_image(12)
    words = [w for w in ("red", "bag", "left", "of", "blue", "coat") if w in m.word_to_id]
    a = fa.faithfulness(m, img, words, draws=3, seed=7)
    b = fa.faithfulness(m, img, words, draws=3, seed=7)
    c = fa.faithfulness(m, img, words, draws=3, seed=8)
    assert [w.index for w in a.tests] == [0, 1, 4, 5]  # the colour and class words
    for x, y, z in zip(a.tests, b.tests, c.tests, strict=True):
        assert x.log_prob_attended == y.log_prob_attended and np.array_equal(x.log_prob_random, y.log_prob_random)
        assert np.array_equal(x.random_cells, y.random_cells) and np.array_equal(x.saliency, y.saliency)
        assert np.array_equal(x.hidden_cells, z.hidden_cells)
    assert any(not np.array_equal(x.random_cells, z.random_cells) for x, z in zip(a.tests, c.tests, strict=True))


def test_default_caption_and_no_object_words():
    m = tiny(seed=13)
    img = scene_image(13)
    res = fa.faithfulness(m, img, beam_size=2, max_len=6, draws=2)
    assert res.words == m.caption(img, beam_size=2, max_len=6).words
    assert res.alphas.shape == (len(res.words), 12, 12)
    assert np.allclose(res.alphas.sum(axis=(1, 2)), 1, atol=1e-5)
    assert res.log_probs.shape == (len(res.words) + 1,)
    empty = fa.faithfulness(m, img, ["left", "of"], draws=2)
    assert empty.tests == [] and np.isnan(fa.summary(empty.tests)["drop_attended"])


def test_saliency_is_captums_gradient_pooled():
    """Captum's Saliency equals the plain autograd gradient of the word's log-probability, |.| summed over channels
    and cells."""
    m = tiny(seed=14)
    img = scene_image(14)
    words = ["red", "bag"]
    x = m.preprocess(img)
    sal = fa.saliency(m, x, words, [1])
    xg = x.clone().requires_grad_()
    log_p, _ = fa.teacher_forced(m, xg, words)
    (grad,) = torch.autograd.grad(log_p[0, 1], xg)
    pooled = fa.pool_to_grid(grad[0].abs().sum(0).double().numpy(), (12, 12))
    np.testing.assert_allclose(sal[0], pooled / pooled.sum(), rtol=1e-4, atol=1e-8)


def test_summary_of_word_tests():
    def test(drop_a, drops_r, rho):
        return fa.WordTest(0, "red", 0.0, np.zeros((1, 2), int), 0.6, -drop_a, np.zeros((len(drops_r), 1, 2), int),
                           -np.asarray(drops_r, float), np.zeros((12, 12)), rho)

    s = fa.summary([test(2.0, [0.0, 1.0], 0.5), test(0.0, [1.0, 1.0], float("nan"))])
    assert s["drop_attended"] == pytest.approx(1.0) and s["drop_attended_std"] == pytest.approx(1.0)
    assert s["drop_random"] == pytest.approx(0.75) and s["drop_difference"] == pytest.approx(0.25)
    assert s["attended_beats_random"] == pytest.approx(0.5)
    assert s["rank_correlation"] == pytest.approx(0.5) and s["words_with_rank_correlation"] == 1 and s["words"] == 2
