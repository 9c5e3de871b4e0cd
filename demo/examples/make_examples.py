"""Regenerates the example scenes shipped with the Captioning tab.

    python -m demo.examples.make_examples

Picks a few scenes of the fixed Fashion-Scenes test set (so the bundled models never saw them in
training) with one, two and three items, writes each as a lossless 96x96 PNG, and records its
ground truth (items with boxes, reference captions, test-set index) in scenes.json, which the tab
uses to show attention correctness when one of these images is captioned.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from attn_models.data.scenes import TEST_SEED, fixed_test_set

HERE = Path(__file__).resolve().parent
PER_COUNT = {1: 1, 2: 2, 3: 3}  # how many examples with 1, 2 and 3 items
SEARCH = 200  # first scenes of the test set to pick from


def main() -> None:
    picked: list[tuple[int, object]] = []
    wanted = dict(PER_COUNT)
    for index, scene in enumerate(fixed_test_set(SEARCH)):
        n = len(scene.items)
        # distinct classes within an example keep the captions readable at a glance
        if wanted.get(n, 0) > 0 and len({it.label for it in scene.items}) == n:
            picked.append((index, scene))
            wanted[n] -= 1
    meta = []
    for index, scene in picked:
        name = f"scene_{index:04d}.png"
        Image.fromarray(scene.image).save(HERE / name, optimize=True)
        meta.append({
            "file": name,
            "test_index": index,
            "test_seed": TEST_SEED,
            "items": [{"label": it.label, "colour": it.colour, "box": list(it.box)} for it in scene.items],
            "captions": [" ".join(c) for c in scene.captions],
        })
    (HERE / "scenes.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(meta)} example scenes to {HERE}")


if __name__ == "__main__":
    main()
