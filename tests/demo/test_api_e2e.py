"""The public API as gradio_client users meet it: every endpoint ``view_api()`` lists is called with exactly the
values it documents (each parameter's default, and every choice of every Literal parameter), every endpoint has a
one-line description, and every output a name that says what it is (not Gradio's fallback ``value_<id>``)."""
from __future__ import annotations

import re
from contextlib import ExitStack
from pathlib import Path

import pytest
import torch
from gradio_client import handle_file

from attn_models.image_transformer.model import ImageTransformer
from demo import captioning_tab, common
from demo import image_transformer_tab as imt
from tests.demo.test_captioning_tab import tab_model  # noqa: F401  (fixture)
from tests.demo.test_sagan_tab import sagan_with_d  # noqa: F401  (fixture: a tiny SAGAN with D, fast)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ["caption", "caption_beams", "caption_faithfulness", "sagan_generate", "sagan_attention", "sagan_sweep",
          "sagan_interpolate", "sagan_discriminator_attention", "sagan_knockout", "imt_sample", "imt_complete",
          "imt_complete_mask", "explorer_visibility", "explorer_export", "explorer_cost", "explorer_measure",
          "bias_shift"]


@pytest.fixture(scope="module")
def api(client) -> dict:
    return client.view_api(return_format="dict", print_info=False)["named_endpoints"]


@pytest.fixture(scope="module")
def small_image_transformers():
    """Untrained 28x28 Image Transformers with the shipped patterns but tiny widths: the documented defaults
    (28 rows, 4 samples) hold for them and sampling is fast."""
    torch.manual_seed(0)
    models = {kind: ImageTransformer(image_size=28, channels=1, num_classes=10, d_model=8, heads=2, layers=1,
                                     ffn=16, attention=kind, query_len=56, memory_len=112, block_h=4, block_w=14,
                                     flange_h=4, flange_w=7).eval()
              for kind in imt.MODEL_NAMES}
    with ExitStack() as stack:
        for kind, m in models.items():
            stack.enter_context(common.override_model(imt.MODEL_NAMES[kind], m))
        yield models


def documented_args(params: list[dict]) -> dict:
    """Each parameter's documented default; files (documented as a URL example) get a local example scene."""
    args = {}
    for p in params:
        if p["parameter_has_default"]:
            args[p["parameter_name"]] = p["parameter_default"]
        else:
            assert p["component"] == "Image", f"{p['parameter_name']} has no default and is not a file"
            args[p["parameter_name"]] = handle_file(captioning_tab.example_paths()[0])
    return args


def call(client, endpoint: str, args: dict):
    return client.submit(**args, api_name=endpoint).result(timeout=300)


def test_public_endpoints_are_listed_with_a_one_line_description_and_named_outputs(api):
    assert {f"/{name}" for name in PUBLIC} <= set(api)
    for endpoint, info in api.items():
        description = info["description"].strip()
        assert description and "\n" not in description and not description.startswith("->"), endpoint
        for ret in info["returns"]:
            assert not re.fullmatch(r"value_\d+", ret["label"]), f"{endpoint} has an unnamed output"


def test_every_endpoint_accepts_its_documented_defaults_and_choices(app_url, api, tab_model,  # noqa: F811
                                                                   small_image_transformers, sagan_with_d):
    from gradio_client import Client

    # This test is about the arguments each endpoint accepts; the files it returns are downloaded and checked by
    # test_exports_e2e.py. (Once in five clean-clone CI runs a download here got HTTP 403 for an image in Gradio's
    # cache; the cause is not found yet, see the issue note.)
    client = Client(app_url, verbose=False, download_files=False)
    for endpoint, info in api.items():
        params = info["parameters"]
        defaults = documented_args(params)
        result = call(client, endpoint, defaults)
        outputs = result if isinstance(result, tuple) else (result,)
        assert len(outputs) == len(info["returns"]), endpoint
        for p in params:
            for value in p["type"].get("enum", []):
                if value == defaults[p["parameter_name"]]:
                    continue
                result = call(client, endpoint, {**defaults, p["parameter_name"]: value})
                check_choice(endpoint, p["parameter_name"], value, result)


def check_choice(endpoint: str, name: str, value, result) -> None:
    """The chosen value did what it says (not merely got through)."""
    if endpoint in ("/imt_sample", "/imt_complete") and name == "label":
        names = result[2 if endpoint == "/imt_sample" else 1]["class_names"]  # the samples' or completions' numbers
        if value == imt.EACH_CLASS_NAME:
            assert names == [imt.CLASS_NAMES[k % 10] for k in range(len(names))]
        else:
            assert set(names) == {value}
    if endpoint == "/explorer_visibility" and name == "c":
        assert ("channel" in result[2]) == (value == "3")
    if endpoint in ("/sagan_generate",) and name == "class_name" and not value.startswith("mixed"):
        assert set(result[4]["classes"]) == {value}
    if endpoint == "/sagan_discriminator_attention" and name == "source":
        assert result[2]["source"] == value
    if endpoint == "/sagan_discriminator_attention" and name == "class_name" and not value.startswith("mixed"):
        assert result[2]["class_name"] == value  # the generated image D judges is of that class


def test_readme_lists_exactly_the_apps_public_endpoints(api):
    """The README's list of endpoints (above its API section) names each endpoint the app documents, once."""
    text = (ROOT / "README.md").read_text()
    listed = text.split("Gradio endpoints (", 1)[1].split("`client.view_api()`", 1)[0]
    names = [n for n in re.findall(r"`(\w+)`", listed) if n not in ("api_name", "gradio_client")]
    assert len(names) == len(set(names)), names
    assert set(names) == {endpoint.lstrip("/") for endpoint in api}


def test_readme_shows_a_gradio_client_call_for_every_public_endpoint():
    text = (ROOT / "README.md").read_text()
    section = text.split("## API (gradio_client)", 1)[1].split("\n## ", 1)[0]
    for name in PUBLIC:
        assert f'api_name="/{name}"' in section, name
