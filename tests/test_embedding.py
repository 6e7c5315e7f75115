"""The embedder on the real default model: precision, and sentence vectors from one forward pass."""

from __future__ import annotations

import numpy as np
import pytest

from rag.config import load_settings
from rag.embedding import Embedder, embedder_for, resolve_model_path, uses_bfloat16
from rag.types import RagError

TEXT = (
    "Honeybees\n"
    "A honeybee colony keeps its hive near 35 degrees Celsius through the winter. "
    "The Treaty of Westphalia ended the Thirty Years' War in 1648."
)
BEES = TEXT.index("A honeybee"), TEXT.index(" The Treaty")
TREATY = TEXT.index("The Treaty"), len(TEXT)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return embedder_for(load_settings())


def test_each_sentence_vector_is_closest_to_its_own_sentence(embedder):
    vectors, spans = embedder.embed_documents_and_spans([TEXT], [[BEES, TREATY]])
    bees, treaty = spans[0]
    alone = embedder.embed_documents([TEXT[slice(*BEES)], TEXT[slice(*TREATY)]])
    assert bees @ alone[0] > bees @ alone[1] + 0.2
    assert treaty @ alone[1] > treaty @ alone[0] + 0.2
    assert np.linalg.norm(bees) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(vectors[0], embedder.embed_documents([TEXT])[0], atol=1e-5)


def test_a_span_over_the_whole_text_reads_like_the_text(embedder):
    vectors, spans = embedder.embed_documents_and_spans([TEXT], [[(0, len(TEXT))]])
    # The text's own vector also averages the [CLS] and [SEP] tokens; nothing else differs.
    assert float(spans[0][0] @ vectors[0]) > 0.97


def test_questions_rank_sentences_by_their_span_vectors(embedder):
    _, spans = embedder.embed_documents_and_spans([TEXT], [[BEES, TREATY]])
    query = embedder.embed_query("Which war ended in 1648?")
    assert int(np.argmax(spans[0] @ query)) == 1


def test_spans_in_a_batch_stay_with_their_own_text(embedder):
    texts = [TEXT, "Tides\nThe Moon raises two tidal bulges.", TEXT]
    spans = [[BEES, TREATY], [(6, len(texts[1]))], [BEES]]
    _, pooled = embedder.embed_documents_and_spans(texts, spans)
    assert [len(p) for p in pooled] == [2, 1, 1]
    np.testing.assert_allclose(pooled[2][0], pooled[0][0], atol=1e-5)


def test_bfloat16_and_float32_vectors_agree():
    texts = [TEXT, "When did the Icelandic volcano erupt?", "Tidal bulges follow the Moon."]
    path = resolve_model_path(load_settings().model)
    full = Embedder(path, precision="float32").embed_documents(texts)
    half = Embedder(path, precision="bfloat16").embed_documents(texts)
    assert np.min(np.sum(full * half, axis=1)) > 0.999


def test_precision_is_checked():
    assert uses_bfloat16("bfloat16") and not uses_bfloat16("float32")
    with pytest.raises(RagError, match="precision must be one of auto, float32, bfloat16"):
        uses_bfloat16("float16")


def test_a_model_without_mean_pooling_gives_no_span_vectors(tmp_path):
    from sentence_transformers import SentenceTransformer, models

    path = resolve_model_path(load_settings().model)
    transformer = models.Transformer(path)
    cls_pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    SentenceTransformer(modules=[transformer, cls_pooling]).save(str(tmp_path / "cls-model"))

    embedder = Embedder(str(tmp_path / "cls-model"))
    vectors, spans = embedder.embed_documents_and_spans([TEXT], [[BEES, TREATY]])
    assert not embedder.pools_spans
    assert spans == [None]
    assert vectors.shape == (1, embedder.dimension)
