"""The docs stand alone: every file, link and command they name is in the repository.

Covers README.md, docs/, the shipped model cards (which `push` publishes to the Hub) and the code's docstrings
and comments: a renamed module or a file that only exists outside the repo breaks a reader's next step.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXTS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "weights").glob("*/README.md"),
                *(p for d in ("attn_models", "demo", "bench") for p in (ROOT / d).rglob("*.py")), ROOT / "app.py"])


def rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("path", TEXTS, ids=rel)
def test_named_modules_exist(path):
    """`python -m attn_models...` commands name modules that exist (old layouts leave stale commands)."""
    for module in set(re.findall(r"python -m ((?:attn_models|tests|bench)(?:\.\w+)*)", path.read_text())):
        assert importlib.util.find_spec(module) is not None, f"{rel(path)} names missing module {module}"


@pytest.mark.parametrize("path", TEXTS, ids=rel)
def test_named_markdown_files_and_links_exist(path):
    text = path.read_text()
    for name in set(re.findall(r"[\w./-]*\b[\w-]+\.md\b", text)):
        if name.startswith("/") or any(part.isupper() for part in Path(name).parts[:-1]):
            continue  # a templated path: weights/<name>/README.md, weights/NAME/README.md
        candidates = [ROOT / name, path.parent / name, ROOT / "docs" / Path(name).name]
        assert any(c.is_file() for c in candidates) or name.startswith("http"), f"{rel(path)} names {name}"
    links = re.findall(r"\]\(([^)#\s]+)\)", text) if path.suffix == ".md" else []
    for target in links:
        if not re.match(r"https?://|mailto:", target):
            assert (path.parent / target).exists(), f"{rel(path)} links to missing {target}"


@pytest.mark.parametrize("path", TEXTS, ids=rel)
def test_named_repo_scripts_exist(path):
    for script in set(re.findall(r"\b((?:bench|demo|tests|attn_models)/[\w/]+\.py)\b", path.read_text())):
        assert (ROOT / script).is_file(), f"{rel(path)} names missing {script}"
