import numpy as np
import pytest

from attn_models.captioning.metrics import (
    attention_correctness,
    class_word_attention,
    item_cells_baseline,
    uniform_baseline,
)
from attn_models.data import scenes as S


def test_generator_deterministic_and_prefix_stable(fashion_mnist):
    a = S.fashion_scenes("test", 20, seed=5)
    b = S.fashion_scenes("test", 30, seed=5)
    c = S.fashion_scenes("test", 20, seed=6)
    for x, y in zip(a, b, strict=False):
        assert np.array_equal(x.image, y.image) and x.items == y.items and x.captions == y.captions
    assert any(not np.array_equal(x.image, y.image) for x, y in zip(a, c, strict=True))


def test_scene_layout_matches_spec(fashion_mnist):
    _, _, test_x, test_y = fashion_mnist
    counts = set()
    for sc in S.fashion_scenes("train", 60, seed=1):
        assert sc.image.shape == (96, 96, 3) and sc.image.dtype == np.uint8
        assert 1 <= len(sc.items) <= 3
        counts.add(len(sc.items))
        inside = np.zeros((96, 96), bool)
        for it in sc.items:
            y0, x0, y1, x1 = it.box
            assert 0 <= y0 and 0 <= x0 and y1 <= 96 and x1 <= 96 and y1 - y0 == 28 and x1 - x0 == 28
            assert not inside[y0:y1, x0:x1].any(), "boxes overlap"
            inside[y0:y1, x0:x1] = True
            # the tint is grey * colour / 255: the brightest pixel is close to the palette colour
            patch = sc.image[y0:y1, x0:x1].reshape(-1, 3).astype(int)
            brightest = patch[patch.sum(1).argmax()]
            col = np.array(S.PALETTE[it.colour])
            assert np.all(brightest <= col + 1)
            cos = brightest @ col / (np.linalg.norm(brightest) * np.linalg.norm(col) + 1e-9)
            assert cos > 0.999 or brightest.sum() == 0
        assert not sc.image[~inside].any(), "pixels outside the boxes must be background"
        assert len({it.colour for it in sc.items}) == len(sc.items)
        assert sc.captions
        for cap in sc.captions:
            assert all(w in S.VOCAB for w in cap)
            for it in sc.items:  # every caption names every item
                assert any(tuple(cap[t:t + 2]) == it.words for t in range(len(cap) - 1))
    assert counts == {1, 2, 3}


def test_test_scenes_use_test_images(fashion_mnist):
    _, _, test_x, test_y = fashion_mnist
    sc = S.fashion_scenes("test", 5, seed=S.TEST_SEED)[0]
    it = sc.items[0]
    y0, x0, y1, x1 = it.box
    patch = sc.image[y0:y1, x0:x1]
    channel = int(np.argmax(S.PALETTE[it.colour]))
    grey = patch[..., channel].astype(float) / S.PALETTE[it.colour][channel] * 255
    candidates = test_x[test_y == it.label].astype(float)
    assert np.abs(candidates - grey).max(axis=(1, 2)).min() <= 2.0


def test_relations_are_true():
    a, b = (0, 0, 28, 28), (0, 40, 28, 68)
    assert S.relations(a, b) == [["left", "of"]]
    assert S.relations(b, a) == [["right", "of"]]
    c = (50, 50, 78, 78)
    assert S.relations(a, c) == [["left", "of"], ["above"]]
    assert S.relations(c, a) == [["right", "of"], ["below"]]


def test_word_boxes_and_correctness():
    items = [S.SceneItem(0, "red", (0, 0, 28, 28)), S.SceneItem(8, "blue", (60, 60, 88, 88))]
    scene = S.Scene(np.zeros((96, 96, 3), np.uint8), items, S.scene_captions(items))
    words = ["red", "tshirt", "above", "blue", "bag", "and", "green", "bag"]
    boxes = S.word_boxes(scene, words)
    assert boxes == [items[0].box, items[0].box, None, items[1].box, items[1].box, None, None, None]
    assert S.object_recall(scene, words) == (2, 2)
    assert S.object_recall(scene, ["red", "bag"]) == (0, 2)
    # what recall misses: the red item named as a bag is confused, the blue one never named is omitted
    assert S.missed_items(scene, words) == (0, 0)
    assert S.missed_items(scene, ["red", "bag"]) == (1, 1)
    assert S.missed_items(scene, ["red", "and", "blue", "above"]) == (0, 2)  # a colour alone is no pair
    assert S.missed_items(scene, ["red", "tshirt", "blue", "tshirt"]) == (1, 0)
    alphas = np.zeros((len(words), 12, 12))
    alphas[:, 0, 0] = 1.0  # all attention in the top-left cell, inside the red tshirt's box
    ac = attention_correctness(alphas, words, scene)
    assert ac[0] == pytest.approx(1.0) and ac[3] == pytest.approx(0.0) and ac[2] is None
    ub = uniform_baseline(scene, words)
    assert ub[0] == pytest.approx(28 * 28 / 96**2) and ub[2] is None
    uni = attention_correctness(np.full((len(words), 12, 12), 1 / 144), words, scene)
    assert uni[0] == pytest.approx(ub[0], abs=1e-6)
    with pytest.raises(ValueError):
        attention_correctness(alphas[:3], words, scene)


def test_class_words_are_the_class_words_after_an_items_colour_with_their_attention_on_that_item():
    """What a confused item's class word looked at: the item its colour names, right class or not; a class after a
    colour the scene lacks, or a colour followed by no class, is no class word of an item."""
    items = [S.SceneItem(0, "red", (0, 0, 28, 28)), S.SceneItem(8, "blue", (60, 60, 88, 88))]
    scene = S.Scene(np.zeros((96, 96, 3), np.uint8), items, S.scene_captions(items))
    words = ["red", "shirt", "above", "blue", "bag", "and", "green", "bag", "red", "above"]
    assert S.class_words(scene, words) == [(1, items[0]), (4, items[1])]
    alphas = np.zeros((len(words), 12, 12))
    alphas[1, 11, 11] = 1.0  # the wrong "shirt" looked at the blue bag's corner, not at the red item
    alphas[4, 9, 9] = 1.0  # the right "bag" looked inside its own box
    rows = class_word_attention(alphas, words, scene)
    assert [r[:2] for r in rows] == [("tshirt", "shirt"), ("bag", "bag")]
    assert rows[0][2] == pytest.approx(0.0) and rows[1][2] == pytest.approx(1.0)
    # the same measure as attention correctness where the class is right
    assert rows[1][2] == pytest.approx(attention_correctness(alphas, words, scene)[4])


def test_item_cells_reference_is_the_correctness_of_a_map_even_over_the_items_cells():
    """12x12 grid of 8 px cells, centres at 4, 12, ..., 92: the red box [0, 28) holds centres 4, 12, 20 (cells 0-2)
    each way; the blue box rows [61, 89) hold 68, 76, 84 (cells 8-10), columns [53, 81) hold 60, 68, 76 (cells 7-9)."""
    items = [S.SceneItem(0, "red", (0, 0, 28, 28)), S.SceneItem(8, "blue", (61, 53, 89, 81))]
    scene = S.Scene(np.zeros((96, 96, 3), np.uint8), items, S.scene_captions(items))
    words = ["red", "tshirt", "above", "blue", "bag"]
    ref = item_cells_baseline(scene, words, (12, 12))
    assert ref[2] is None
    maps = np.zeros((len(words), 12, 12))
    maps[:2, 0:3, 0:3] = 1 / 9
    maps[3:, 8:11, 7:10] = 1 / 9
    expected = attention_correctness(maps, words, scene)  # the metric itself, on the maps built by hand
    assert [ref[k] for k in (0, 1, 3, 4)] == pytest.approx([expected[k] for k in (0, 1, 3, 4)])
    assert 0.5 < ref[3] < 1.0  # some mass crosses the box edge when upsampled
    central = np.zeros((len(words), 12, 12))
    central[3:, 9, 8] = 1.0  # the blue item's central cell
    assert attention_correctness(central, words, scene)[3] > ref[3]
    # a box that holds no cell centre: the cell holding its own centre
    tiny = S.Scene(scene.image, [S.SceneItem(0, "red", (5, 5, 11, 11))], [])
    one = np.zeros((2, 12, 12))
    one[:, 1, 1] = 1.0  # the box centre (8, 8) lies in cell (1, 1)
    assert item_cells_baseline(tiny, ["red", "tshirt"], (12, 12))[0] == pytest.approx(
        attention_correctness(one, ["red", "tshirt"], tiny)[0])


def test_canonical_caption_is_a_reference_in_reading_order():
    a = S.SceneItem(0, "red", (50, 0, 78, 28))    # bottom-left
    b = S.SceneItem(1, "blue", (0, 10, 28, 38))   # top, columns overlap with a
    c = S.SceneItem(2, "green", (10, 60, 38, 88))  # right
    refs = S.scene_captions([c, a, b])
    assert refs[0] == ["blue", "trousers", "above", "red", "tshirt", "and", "red", "tshirt", "left", "of",
                       "green", "pullover"]
    assert len(refs) == len({tuple(r) for r in refs})
