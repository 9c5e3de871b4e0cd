"""The n-best list of the beam search (``caption_beams``) and the word alignment of two captions."""
import numpy as np
import pytest
import torch

from attn_models.captioning.compare import align_words
from attn_models.captioning.model import BeamCaption
from tests.captioning.test_model import scene_image, tiny


@pytest.mark.parametrize("attention", ["soft", "hard"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beam_size", [1, 3, 6])
def test_best_hypothesis_is_the_caption_and_scores_are_sorted(attention, seed, beam_size):
    m = tiny(attention, seed=seed)
    img = scene_image(seed)
    beams = m.caption_beams(img, beam_size=beam_size, max_len=10)
    cap = m.caption(img, beam_size=beam_size, max_len=10)
    assert 1 <= len(beams) <= beam_size and all(isinstance(b, BeamCaption) for b in beams)
    assert beams[0].words == cap.words
    assert np.array_equal(beams[0].alphas, cap.alphas) and np.array_equal(beams[0].betas, cap.betas)
    scores = [b.score for b in beams]
    assert scores == sorted(scores, reverse=True)
    assert len({tuple(b.words) for b in beams}) == len(beams)  # distinct hypotheses
    for b in beams:
        assert b.alphas.shape == (len(b.words), 12, 12) and b.betas.shape == (len(b.words),)
        assert np.allclose(b.alphas.sum(axis=(1, 2)), 1.0, atol=1e-5) and (b.alphas >= 0).all()
        assert b.score == pytest.approx(b.log_prob / (len(b.words) + int(b.ended)))
        assert b.log_prob <= 0 and all(w in m.vocab and not w.startswith("<") for w in b.words)


def test_hypotheses_cut_by_max_len_are_listed_unended():
    m = tiny(seed=4)
    with torch.no_grad():
        m.decoder.out_o.bias[m.end_id] = -1e4  # <end> never wins
    beams = m.caption_beams(scene_image(), beam_size=4, max_len=5)
    assert len(beams) == 4 and all(not b.ended and len(b.words) == 5 for b in beams)


def test_bad_arguments_and_training_mode_restored():
    m = tiny(seed=5)
    with pytest.raises(ValueError):
        m.caption_beams(scene_image(), beam_size=0)
    with pytest.raises(ValueError):
        m.caption_beams(np.zeros((4, 4, 3)))
    m.train()
    m.caption_beams(scene_image(), beam_size=2, max_len=4)
    assert m.training


@pytest.mark.parametrize("a, b, columns", [
    (["red", "bag"], ["red", "bag"], [(0, 0), (1, 1)]),
    (["blue", "pullover", "left", "of", "red", "bag"], ["blue", "coat", "left", "of", "red", "bag"],
     [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]),
    (["red", "bag", "above", "blue", "coat"], ["red", "bag"], [(0, 0), (1, 1), (2, None), (3, None), (4, None)]),
    (["bag"], ["red", "bag"], [(None, 0), (0, 1)]),
    ([], ["bag"], [(None, 0)]),
    ([], [], []),
])
def test_align_words(a, b, columns):
    got = align_words(a, b)
    assert got == columns
    assert [i for i, _ in got if i is not None] == list(range(len(a)))  # every word once, in order
    assert [j for _, j in got if j is not None] == list(range(len(b)))
