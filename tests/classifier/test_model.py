"""Fashion-MNIST classifier (the GAN-metric feature extractor) and the GAN metrics built on it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attn_models.classifier.model import FashionMNISTClassifier, PenultimateFeatures, to_batch
from attn_models.sagan.evaluate import Scorer, balanced_real, inception_style_score


def test_to_batch_accepts_the_shapes_we_feed_it():
    u8 = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    x = to_batch(u8)
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and x.max() <= 1
    np.testing.assert_allclose(x[:, 0].numpy(), u8[:, 2:30, 2:30] / 255.0, atol=1e-6)  # centre crop of the pad
    assert to_batch(u8[..., None]).shape == (3, 1, 28, 28)  # NHWC
    assert to_batch(torch.rand(2, 3, 299, 299)).shape == (2, 1, 28, 28)  # torchmetrics-style probe
    with pytest.raises(ValueError):
        to_batch(torch.rand(2, 2, 28, 28))


def test_features_are_penultimate_layer():
    m = FashionMNISTClassifier().eval()
    x = torch.rand(4, 1, 28, 28)
    f = m.features(x)
    assert f.shape == (4, m.num_features)
    torch.testing.assert_close(m.head(f), m(x))
    assert PenultimateFeatures(m)(x).dtype == torch.float64


def test_inception_style_score_bounds():
    k = 10
    confident_diverse = np.eye(k)[np.arange(1000) % k]
    # Splits are random draws of 100, so their class mix is only roughly uniform: a bit under k.
    assert 9.0 < inception_style_score(confident_diverse)[0] <= k + 1e-6
    one_class = np.tile(np.eye(k)[0], (1000, 1))
    assert inception_style_score(one_class)[0] == pytest.approx(1.0, abs=1e-3)
    uniform = np.full((1000, k), 1.0 / k)
    assert inception_style_score(uniform)[0] == pytest.approx(1.0, abs=1e-3)


def test_shipped_classifier_accuracy_and_fid_sanity(fashion_mnist):
    from attn_models import load

    try:
        clf = load("fashion-mnist-classifier", device="cpu")
    except ValueError:
        pytest.skip("fashion-mnist-classifier weights not shipped yet")
    train_x, train_y, test_x, test_y = fashion_mnist
    pred = clf.predict_proba(test_x[:2000]).argmax(1)
    assert (pred == test_y[:2000]).mean() >= 0.90  # whole set: >= 0.92, see the model card
    scorer = Scorer(clf, test_x[:2000])
    real = scorer.score(*balanced_real(train_x, train_y, 100))
    noise = scorer.score(np.random.default_rng(0).integers(0, 256, (1000, 28, 28), dtype=np.uint8),
                         np.arange(1000) % 10)
    assert real["fid"] < noise["fid"] / 10  # real images sit far closer to the test set than noise
    assert real["class_consistency"] > 0.9 and noise["class_consistency"] < 0.3
