"""Every shipped model gives the outputs recorded in tests/golden/shipped_outputs.npz (see record.py there).

Discrete outputs (words, images, samples) must be identical; floating-point ones equal within 1e-6.
When a model's weights change on purpose, its SHA-256 no longer matches and the test says to re-record.
"""
from __future__ import annotations

import numpy as np
import pytest

from attn_models import list_models
from tests.golden import record

GOLDEN = np.load(record.OUT, allow_pickle=False)


@pytest.fixture(scope="module")
def current():
    return record.outputs()


def test_every_registered_model_is_recorded():
    recorded = {k.split("/")[0] for k in GOLDEN.files}
    assert recorded == set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_outputs_unchanged(name, current):
    keys = [k for k in GOLDEN.files if k.split("/")[0] == name]
    assert str(current[f"{name}/sha256"]) == str(GOLDEN[f"{name}/sha256"]), (
        f"weights/{name}/model.safetensors changed: if that is intended, re-record with "
        "`python -m tests.golden.record` and commit tests/golden/shipped_outputs.npz"
    )
    for key in keys:
        want, got = GOLDEN[key], current[key]
        assert got.shape == want.shape and got.dtype == want.dtype, key
        if want.dtype.kind in "fc":
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=key, equal_nan=True)
        else:
            np.testing.assert_array_equal(got, want, err_msg=key)
