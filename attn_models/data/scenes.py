"""Fashion-Scenes: captioning scenes composed from Fashion-MNIST items, with ground-truth boxes.

Spec (docs/fashion-scenes.md): a 96x96 RGB canvas on black, 1 to 3 uncropped 28x28 Fashion-MNIST items at integer
offsets fully inside the canvas with non-overlapping boxes, each tinted ``grey/255 * colour`` from an
8-colour palette. Every caption names every item as ``<colour> <class>`` and links them with spatial
words chosen from the layout. Train scenes draw Fashion-MNIST train images, test scenes test images.

Choices made here (the spec leaves them open):
- colours are distinct within a scene, so a ``<colour> <class>`` pair names exactly one item;
- captions for an ordering (A, B[, C]) of the items read ``A rel(A,B) B [and B rel(B,C) C]``, where
  ``rel`` is ``left of``/``right of``/``above``/``below`` and must hold strictly (the boxes are
  separated along that axis). The references of a scene are every ordering of its items, with every
  relation that holds (a diagonal pair gives two), so the reference set is complete, not sampled.
- the first reference is the *canonical* caption: items in reading order (a before b when a is
  wholly left of b, or, when their columns overlap, wholly above b), so it only says "left of" and
  "above". Training on it gives each step one item to look at; with every ordering equally likely
  the most likely first word is a mixture over the items and soft attention spreads over all of them.
- scene ``i`` of ``fashion_scenes(split, n, seed)`` depends only on ``(split, seed, i)``: asking for
  more scenes keeps the first ones.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from attn_models.data.fashion_mnist import CLASS_NAMES, load_fashion_mnist

CANVAS = 96
ITEM = 28
MAX_ITEMS = 3
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 240),
    "yellow": (240, 220, 40),
    "magenta": (220, 50, 220),
    "cyan": (40, 210, 220),
    "orange": (250, 140, 30),
    "white": (240, 240, 240),
}
COLOURS = tuple(PALETTE)
CLASS_WORDS = CLASS_NAMES  # the caption words of the classes are their names
RELATION_WORDS = ("left", "right", "of", "above", "below", "and")
SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
# The whole vocabulary of Fashion-Scenes captions; index 0 is padding.
VOCAB: tuple[str, ...] = SPECIALS + COLOURS + CLASS_WORDS + RELATION_WORDS
OBJECT_WORDS = frozenset(COLOURS) | frozenset(CLASS_WORDS)

TEST_SEED = 20150210  # Show, Attend and Tell's arXiv date; the fixed test set's seed
TEST_SIZE = 2000
_SPLIT_SALT = {"train": 0, "test": 1}  # keeps train and test streams apart even with equal seeds

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), canvas pixels, end-exclusive


@dataclass
class SceneItem:
    label: int
    colour: str
    box: Box

    @property
    def words(self) -> tuple[str, str]:
        return self.colour, CLASS_WORDS[self.label]


@dataclass
class Scene:
    image: np.ndarray  # uint8 (96, 96, 3)
    items: list[SceneItem]
    captions: list[list[str]] = field(default_factory=list)  # every reference, as word lists


def relations(a: Box, b: Box) -> list[list[str]]:
    """Every spatial phrase that truly says where box ``a`` is relative to box ``b`` (strict separation)."""
    out = []
    if a[3] <= b[1]:
        out.append(["left", "of"])
    if a[1] >= b[3]:
        out.append(["right", "of"])
    if a[2] <= b[0]:
        out.append(["above"])
    if a[0] >= b[2]:
        out.append(["below"])
    return out


def scene_captions(items: list[SceneItem]) -> list[list[str]]:
    """All reference captions of a layout: every item order, every true relation (see module doc)."""
    refs: list[list[str]] = []
    for order in itertools.permutations(items):
        rel_choices = [relations(a.box, b.box) for a, b in zip(order, order[1:], strict=False)]
        for rels in itertools.product(*rel_choices):
            words = list(order[0].words)
            for k, rel in enumerate(rels):
                if k > 0:  # "A rel B and B rel C": repeat B so each clause is self-contained
                    words += ["and", *order[k].words]
                words += [*rel, *order[k + 1].words]
            refs.append(words)
    canon = canonical_caption(items)
    return [canon] + [r for r in refs if r != canon]


def _before(a: Box, b: Box) -> bool:
    """Reading order: wholly left of, or (columns overlapping) wholly above."""
    if a[3] <= b[1] or b[3] <= a[1]:
        return a[3] <= b[1]
    return a[2] <= b[0]


def canonical_caption(items: list[SceneItem]) -> list[str]:
    """The reading-order caption (see module doc). Pairwise reading order need not be transitive for
    three items, so take the item order whose consecutive pairs are all in reading order (one always
    exists), the smallest by the boxes' (x0, y0) when several do."""
    orders = [o for o in itertools.permutations(items)
              if all(_before(a.box, b.box) for a, b in zip(o, o[1:], strict=False))]
    order = min(orders, key=lambda o: [(it.box[1], it.box[0]) for it in o])
    words = list(order[0].words)
    for k, (a, b) in enumerate(zip(order, order[1:], strict=False)):
        if k > 0:
            words += ["and", *a.words]
        words += (["left", "of"] if a.box[3] <= b.box[1] else ["above"]) + list(b.words)
    return words


def _boxes_overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def make_scene(rng: np.random.Generator, images: np.ndarray, labels: np.ndarray,
               n_items: int | None = None) -> Scene:
    """One scene from ``images`` uint8 (N, 28, 28) / ``labels`` (N,), all randomness from ``rng``."""
    if n_items is None:
        n_items = int(rng.integers(1, MAX_ITEMS + 1))
    if not 1 <= n_items <= MAX_ITEMS:
        raise ValueError(f"n_items must be in 1..{MAX_ITEMS}, got {n_items}")
    boxes: list[Box] = []
    while len(boxes) < n_items:  # rejection sampling; 3 boxes of 28 in 96 fit easily
        y0, x0 = (int(v) for v in rng.integers(0, CANVAS - ITEM + 1, size=2))
        box = (y0, x0, y0 + ITEM, x0 + ITEM)
        if not any(_boxes_overlap(box, b) for b in boxes):
            boxes.append(box)
    colours = rng.choice(len(COLOURS), size=n_items, replace=False)
    picks = rng.integers(0, len(images), size=n_items)
    canvas = np.zeros((CANVAS, CANVAS, 3), dtype=np.uint8)
    items = []
    for box, c, k in zip(boxes, colours, picks, strict=True):
        colour = COLOURS[int(c)]
        tint = images[k].astype(np.float32)[:, :, None] / 255.0 * np.asarray(PALETTE[colour], np.float32)
        canvas[box[0]:box[2], box[1]:box[3]] = np.rint(tint).astype(np.uint8)
        items.append(SceneItem(label=int(labels[k]), colour=colour, box=box))
    return Scene(image=canvas, items=items, captions=scene_captions(items))


def scene_rng(split: str, seed: int, index: int) -> np.random.Generator:
    if split not in _SPLIT_SALT:
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    return np.random.default_rng([int(seed), _SPLIT_SALT[split], int(index)])


def fashion_scenes(split: str, n: int, seed: int, start: int = 0, root=None,
                   items: np.ndarray | None = None) -> list[Scene]:
    """Scenes ``start .. start+n-1`` of the deterministic stream ``(split, seed)``.

    Train scenes use Fashion-MNIST train images only, test scenes test images only; ``items`` (indices into the
    split) restricts them to those images.
    """
    if n < 0 or start < 0:
        raise ValueError("n and start must be >= 0")
    images, labels = load_fashion_mnist(split, root=root)
    if items is not None:
        images, labels = images[items], labels[items]
    return [make_scene(scene_rng(split, seed, i), images, labels) for i in range(start, start + n)]


def fixed_test_set(n: int = TEST_SIZE) -> list[Scene]:
    """The fixed test set (or its first ``n`` scenes)."""
    return fashion_scenes("test", n, TEST_SEED)


def match_items(scene: Scene, words: list[str]) -> list[SceneItem | None]:
    """For each word, the item it names, or None.

    A word counts as naming an item only inside an adjacent ``<colour> <class>`` pair that matches
    an item of the scene exactly (both words); both words of the pair then carry that item. A lone
    colour, or a pair naming something not in the scene, carries nothing.
    """
    by_pair = {it.words: it for it in scene.items}  # colours are distinct, so pairs are unique
    out: list[SceneItem | None] = [None] * len(words)
    for t in range(len(words) - 1):
        item = by_pair.get((words[t], words[t + 1]))
        if item is not None:
            out[t] = out[t + 1] = item
    return out


def word_boxes(scene: Scene, words: list[str]) -> list[Box | None]:
    """The box each object word (colour or class of a matched pair) refers to; None for other words."""
    return [it.box if it is not None else None for it in match_items(scene, words)]


def object_recall(scene: Scene, words: list[str]) -> tuple[int, int]:
    """(items named by a matching ``<colour> <class>`` pair, items in the scene)."""
    named = {id(it) for it in match_items(scene, words) if it is not None}
    return sum(id(it) in named for it in scene.items), len(scene.items)


def class_words(scene: Scene, words: list[str]) -> list[tuple[int, SceneItem]]:
    """Every class word right after the colour of one of the scene's items, as (its position, that item): the item
    it is meant to name (colours are distinct in a scene), its class right or not (``missed_items``' confused)."""
    by_colour = {it.colour: it for it in scene.items}
    return [(t + 1, by_colour[words[t]]) for t in range(len(words) - 1)
            if words[t] in by_colour and words[t + 1] in CLASS_WORDS]


def missed_items(scene: Scene, words: list[str]) -> tuple[int, int]:
    """The items ``object_recall`` does not count, split in two: (confused, omitted). Confused: the caption has the
    item's colour right before a class word, but not its class (the colours of a scene are distinct, so the colour
    says which item is meant); omitted: everything else (the item's colour never starts a pair)."""
    named = {id(it) for it in match_items(scene, words) if it is not None}
    paired = {words[t] for t in range(len(words) - 1) if words[t] in COLOURS and words[t + 1] in CLASS_WORDS}
    missed = [it for it in scene.items if id(it) not in named]
    confused = sum(it.colour in paired for it in missed)
    return confused, len(missed) - confused
