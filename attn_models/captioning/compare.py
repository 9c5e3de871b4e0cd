"""Two captions of one image side by side (soft vs hard attention): their words aligned into columns, so each
word's map can be set beside the other model's map for the same word.

The alignment is difflib's longest matching blocks: runs of equal words share columns; where the captions
differ, the differing words share columns pairwise (e.g. "coat" beside "pullover"), and what one caption has more
faces a gap.
"""
from __future__ import annotations

from difflib import SequenceMatcher


def align_words(a: list[str], b: list[str]) -> list[tuple[int | None, int | None]]:
    """Columns (index in ``a`` or None, index in ``b`` or None), covering every word of both in order."""
    columns: list[tuple[int | None, int | None]] = []
    for op, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            columns += [(i1 + k, j1 + k) for k in range(i2 - i1)]
            continue
        n = max(i2 - i1, j2 - j1)  # replace, delete or insert: pair what there is, gaps for the rest
        columns += [(i1 + k if i1 + k < i2 else None, j1 + k if j1 + k < j2 else None) for k in range(n)]
    return columns
