"""The captioning tab's views beside the caption, end to end: ``caption_beams`` and ``caption_faithfulness``
through gradio_client (the numbers are the library's for the same image), their downloads, the documented
arguments, bad input as clear errors with the server still serving; and the soft-vs-hard comparison (a private
event) through its handler."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from attn_models.captioning import faithfulness as fa
from demo import captioning_tab as tab
from tests.demo.test_captioning_tab import bad_upload, png_header_only, tab_model  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def beams(client, path, kind="soft", beam=3, smooth=True):
    return client.predict(handle_file(path), kind, beam, smooth, api_name="/caption_beams")


def faith(client, path, kind="soft", beam=3, draws=3, seed=0):
    return client.predict(handle_file(path), kind, beam, draws, seed, api_name="/caption_faithfulness")


def npz(path) -> dict:
    with np.load(path, allow_pickle=False) as f:  # plain arrays: no pickle needed (nor allowed)
        return {k: f[k] for k in f.files}


def test_endpoints_are_documented_with_the_values_they_accept(client):
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    for name, params in (("/caption_beams", ["image", "attention", "beam_size", "smooth_maps"]),
                         ("/caption_faithfulness", ["image", "attention", "beam_size", "random_draws", "seed"])):
        info = api[name]
        assert [p["parameter_name"] for p in info["parameters"]] == params
        assert info["description"].strip() and "\n" not in info["description"].strip()
        kinds = next(p for p in info["parameters"] if p["parameter_name"] == "attention")
        assert kinds["type"].get("enum") == ["soft", "hard"] and kinds["parameter_default"] == "soft"
        assert all(not re.fullmatch(r"value_\d+", r["label"]) for r in info["returns"])
    # every beam's picture is returned once, as its PNG download (the tab copies it into the view in the browser)
    assert [r["label"] for r in api["/caption_beams"]["returns"]] == [
        "Hypotheses, best first", "Hypotheses", "PNG picture", "NPZ numbers", "JSON numbers"]
    # ... and so is the faithfulness picture
    assert [r["label"] for r in api["/caption_faithfulness"]["returns"]] == [
        "Per object word (drops in nats of log-probability)", "Faithfulness summary", "Faithfulness numbers",
        "PNG picture", "NPZ numbers", "JSON numbers"]
    defaults = {p["parameter_name"]: p["parameter_default"] for p in api["/caption_faithfulness"]["parameters"][1:]}
    assert defaults == {"attention": "soft", "beam_size": 3, "random_draws": 5, "seed": 0}


def test_documented_defaults_and_choices_are_accepted(app_url, client, tab_model):  # noqa: F811
    """Each endpoint called with exactly what view_api documents: every default, then every choice."""
    from gradio_client import Client

    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    quiet = Client(app_url, verbose=False, download_files=False)
    for name in ("/caption_beams", "/caption_faithfulness"):
        params = api[name]["parameters"]
        args = {p["parameter_name"]: p["parameter_default"] for p in params if p["parameter_has_default"]}
        args["image"] = handle_file(tab.example_paths()[0])
        result = quiet.submit(**args, api_name=name).result(timeout=300)
        assert len(result) == len(api[name]["returns"])
        for p in params:
            for value in p["type"].get("enum", []):
                raw = quiet.submit(**{**args, p["parameter_name"]: value}, api_name=name).result(timeout=300)[1:4]
                assert any(isinstance(r, dict) and r.get("attention") == value for r in raw), (name, value)


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_every_beam_through_the_app_is_the_librarys(client, tab_model, kind):  # noqa: F811
    path = tab.example_paths()[-1]
    table, raw, png, npz_path, js = beams(client, path, kind, 3)
    ref = tab_model[kind].caption_beams(Image.open(path).convert("RGB"), beam_size=3, max_len=tab.MAX_LEN)
    best = tab_model[kind].caption(Image.open(path).convert("RGB"), beam_size=3, max_len=tab.MAX_LEN)
    hyps = raw["hypotheses"]
    assert [h["words"] for h in hyps] == [b.words for b in ref] and hyps[0]["words"] == best.words
    scores = [h["score"] for h in hyps]
    assert scores == sorted(scores, reverse=True) and [h["rank"] for h in hyps] == list(range(1, len(hyps) + 1))
    for h, b in zip(hyps, ref, strict=True):
        assert h["score"] == pytest.approx(b.score, abs=1e-6) and h["log_prob"] == pytest.approx(b.log_prob, abs=1e-6)
        alphas = np.asarray(h["alphas"]).reshape(b.alphas.shape)  # (an empty hypothesis comes back as [])
        np.testing.assert_allclose(alphas, b.alphas, atol=1e-6)
        assert np.allclose(alphas.sum(axis=(1, 2)), 1, atol=1e-4)
    assert table["headers"] == tab.BEAM_HEADERS
    assert [r[1] for r in table["data"]] == [" ".join(b.words) or "(empty)" for b in ref]
    # downloads: the picture (the one the tab shows: each hypothesis's strip of word maps under its header, best
    # first), and the numbers, one entry per hypothesis
    base = tab.display_image(np.asarray(Image.open(path).convert("RGB")), tab.THUMB)
    expected = tab.render.sheet([tab.with_header(tab.word_strip(base, b.words, b.alphas, True),
                                                 f"#{r}  score {b.score:.3f}  (log-prob {b.log_prob:.2f}): "
                                                 f"{' '.join(b.words) or '(empty)'}") for r, b in enumerate(ref, 1)],
                                columns=1)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (expected.shape[1], expected.shape[0])
        # the maps are the library's alphas to 1e-6 through the app: a grey level or two may differ
        assert np.abs(np.asarray(im.convert("RGB")).astype(int) - expected).max() <= 2
    numbers = npz(npz_path)
    np.testing.assert_allclose(numbers["scores"], scores, atol=1e-9)
    for r, b in enumerate(ref, 1):
        assert numbers[f"words/{r}"].tolist() == b.words
        np.testing.assert_allclose(numbers[f"alphas/{r}"], b.alphas, atol=1e-6)
    with open(js) as f:
        assert json.load(f)["words"] == {str(r): b.words for r, b in enumerate(ref, 1)}


@pytest.mark.parametrize("kind", ["soft", "hard"])
def test_faithfulness_through_the_app_is_the_librarys(client, tab_model, kind):  # noqa: F811
    path = tab.example_paths()[-1]
    result = faith(client, path, kind, beam=2, draws=3, seed=5)
    assert len(result) == 6  # the picture is returned once: as the PNG download, which the tab shows
    table, note, raw, png, npz_path, js = result
    assert isinstance(table, dict) and isinstance(note, str) and isinstance(raw, dict)
    assert all(isinstance(f, str) for f in (npz_path, js))
    image = Image.open(path).convert("RGB")
    ref = fa.faithfulness(tab_model[kind], image, beam_size=2, max_len=tab.MAX_LEN, draws=3, seed=5)
    assert raw["words"] == ref.words and raw["attention"] == kind and raw["seed"] == 5 and raw["draws"] == 3
    words = raw["object_words"]
    assert [w["index"] for w in words] == [t.index for t in ref.tests]
    assert all(w["word"] in fa.OBJECT_WORDS for w in words)
    for w, t in zip(words, ref.tests, strict=True):
        assert w["drop_attended"] == pytest.approx(t.drop_attended, abs=1e-6)
        assert w["drop_random"] == pytest.approx(t.drop_random, abs=1e-6)
        assert w["hidden_cells"] == t.hidden_cells.tolist() and w["hidden_mass"] >= fa.MASS - 1e-6
        np.testing.assert_allclose(np.asarray(w["saliency"]), t.saliency, atol=1e-6)
        if tab_model[kind].test_mode == "argmax":
            assert len(w["hidden_cells"]) == 1  # the one cell it chose
    assert table["headers"] == tab.FAITH_HEADERS and [r[1] for r in table["data"]] == [t.word for t in ref.tests]
    if ref.tests:
        assert "colour and class words" in note
        # the download is the picture the tab shows: per word, the attended and the random cells hidden, α and
        # saliency under its numbers
        expected = tab.faithfulness_picture(tab_model[kind], image, ref)
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size == (expected.shape[1], expected.shape[0])
            assert im.height >= len(ref.tests) * tab.THUMB
            # the saliency is the library's to 1e-6 through the app: a grey level or two may differ
            assert np.abs(np.asarray(im.convert("RGB")).astype(int) - expected).max() <= 2
    else:
        assert png is None and tab.NO_OBJECT_WORDS in note  # nothing to picture
    numbers = npz(npz_path)
    assert numbers["words"].tolist() == ref.words and numbers["index"].tolist() == [t.index for t in ref.tests]
    np.testing.assert_allclose(numbers["drop_attended"], [t.drop_attended for t in ref.tests], atol=1e-6)
    assert numbers["log_prob_random"].shape == (len(ref.tests), 3)
    assert numbers["saliency"].shape == (len(ref.tests), *raw["grid_hw"])
    for t in ref.tests:
        assert numbers[f"hidden_cells/{t.index}"].tolist() == t.hidden_cells.tolist()
    with open(js) as f:
        assert json.load(f)["seed"] == 5


def test_the_views_take_an_uploaded_photo(client, tab_model, tmp_path):  # noqa: F811
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (120, 200, 3), dtype=np.uint8)).save(path)
    raw = beams(client, str(path), "hard", 2)[1]
    assert 1 <= len(raw["hypotheses"]) <= 2
    raw = faith(client, str(path), "soft", 1, 2, 3)[2]
    assert len(raw["background"]) == 3 and raw["words"]


BAD = [
    ("empty.png", b"", {}, "empty"),
    ("notes.png", b"definitely not an image", {}, "not an image"),
    ("bomb.png", png_header_only(20000, 20000), {}, "too large"),
    ("ok.png", None, {"beam": 1000}, "Beam size must be a whole number between 1 and 10, got 1000"),
    ("ok.png", None, {"kind": "medium"}, "Attention must be one of soft, hard"),
]


@pytest.mark.parametrize("name, data, kw, message", BAD + [
    ("ok.png", None, {"draws": 0}, "Random draws must be a whole number between 1 and 20, got 0"),
    ("ok.png", None, {"draws": 2.5}, "Random draws must be a whole number between 1 and 20, got 2.5"),
    ("ok.png", None, {"seed": -1}, "Seed must be a whole number between 0 and 2147483647, got -1"),
])
def test_bad_faithfulness_input_is_a_clear_error_and_the_server_keeps_serving(client, tab_model, tmp_path,  # noqa: F811
                                                                             name, data, kw, message):
    with pytest.raises(AppError) as err:
        faith(client, bad_upload(tmp_path, name, data), **kw)
    assert re.search(message, str(err.value)), str(err.value)
    raw = faith(client, tab.example_paths()[0], beam=1, draws=1)[2]  # still serving
    assert isinstance(raw["object_words"], list)


@pytest.mark.parametrize("name, data, kw, message", BAD)
def test_bad_beams_input_is_a_clear_error_and_the_server_keeps_serving(client, tab_model, tmp_path,  # noqa: F811
                                                                       name, data, kw, message):
    with pytest.raises(AppError) as err:
        beams(client, bad_upload(tmp_path, name, data), **kw)
    assert re.search(message, str(err.value)), str(err.value)
    raw = beams(client, tab.example_paths()[0], beam=2)[1]  # still serving
    assert 1 <= len(raw["hypotheses"]) <= 2


def test_soft_and_hard_side_by_side_aligned_by_word(tab_model):  # noqa: F811
    path = tab.example_paths()[0]
    picture, note, raw = tab.compare_soft_hard(path, 2, True, device="cpu")
    image = Image.open(path).convert("RGB")
    soft = tab_model["soft"].caption(image, beam_size=2, max_len=tab.MAX_LEN)
    hard = tab_model["hard"].caption(image, beam_size=2, max_len=tab.MAX_LEN)
    assert raw["soft"]["words"] == soft.words and raw["hard"]["words"] == hard.words
    columns = raw["columns"]
    assert [i for i, _ in columns if i is not None] == list(range(len(soft.words)))
    assert [j for _, j in columns if j is not None] == list(range(len(hard.words)))
    assert " ".join(soft.words) in note and " ".join(hard.words) in note
    assert picture.shape[1] >= len(columns) * tab.THUMB  # one column of maps per aligned word
    with pytest.raises(Exception, match="Beam size must be"):
        tab.compare_soft_hard(path, 0, True, device="cpu")
