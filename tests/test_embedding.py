"""The embedder on the real default model, on both backends: precision, threads, the OpenVINO
export and its cache, and sentence vectors from one forward pass."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from rag import openvino_model
from rag.config import Settings, load_settings
from rag.embedding import (Embedder, choose_backend, embedder_for, physical_cores, resolve_model_path,
                           resolve_threads, uses_bfloat16)
from rag.types import RagError
from tests.conftest import DEFAULT_CORPUS, SCIFACT_SAMPLE

needs_openvino = pytest.mark.skipif(not openvino_model.installed(), reason="openvino is not installed")
BACKENDS = ["torch", pytest.param("openvino", marks=needs_openvino)]

TEXT = (
    "Honeybees\n"
    "A honeybee colony keeps its hive near 35 degrees Celsius through the winter. "
    "The Treaty of Westphalia ended the Thirty Years' War in 1648."
)
BEES = TEXT.index("A honeybee"), TEXT.index(" The Treaty")
TREATY = TEXT.index("The Treaty"), len(TEXT)


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("openvino-cache"))


@pytest.fixture(scope="module", params=BACKENDS)
def embedder(request, ov_cache) -> Embedder:
    return embedder_for(load_settings(backend=request.param, encoder_cache_dir=ov_cache))


def passages(n: int = 24) -> list[str]:
    """Real abstracts (title, then text), as the indexer embeds them."""
    lines = (SCIFACT_SAMPLE / "corpus.jsonl").read_text().splitlines()[:n]
    return [f"{d['title']}\n{d['text']}" for d in map(json.loads, lines)]


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


@needs_openvino
@pytest.mark.timeout(400)
@pytest.mark.parametrize("precision", ["float32", "auto"])
def test_the_two_backends_give_the_same_vectors(precision, ov_cache):
    texts = passages()
    spans = [[(0, t.index("\n")), (t.index("\n") + 1, len(t))] for t in texts]
    torch_run = Embedder(backend="torch", precision=precision)
    openvino_run = Embedder(backend="openvino", precision=precision, cache_dir=ov_cache)
    assert openvino_run.backend == "openvino" and openvino_run.bfloat16 == torch_run.bfloat16
    (t_vectors, t_spans), (o_vectors, o_spans) = (
        e.embed_documents_and_spans(texts, spans) for e in (torch_run, openvino_run))
    assert np.min(np.sum(t_vectors * o_vectors, axis=1)) >= 0.9999
    span_cosines = np.concatenate([np.sum(a * b, axis=1) for a, b in zip(t_spans, o_spans)])
    assert np.min(span_cosines) >= 0.9999
    query = "Which cells induce myelodysplasia?"
    assert float(torch_run.embed_query(query) @ openvino_run.embed_query(query)) >= 0.9999


@needs_openvino
def test_the_openvino_export_is_made_once_and_read_back(tmp_path, monkeypatch):
    first = Embedder(backend="openvino", cache_dir=str(tmp_path))
    exported = list(tmp_path.glob("*/model.xml"))
    assert len(exported) == 1 and exported[0].with_suffix(".bin").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]

    def no_export(*args):
        raise AssertionError("exported again although the cache holds the model")

    monkeypatch.setattr(openvino_model, "_export", no_export)
    second = Embedder(backend="openvino", cache_dir=str(tmp_path))
    np.testing.assert_allclose(second.embed_documents([TEXT]), first.embed_documents([TEXT]), atol=1e-6)


@needs_openvino
@pytest.mark.timeout(400)
def test_a_start_from_the_cache_never_imports_torch(tmp_path):
    """A cold `rag ask` pays seconds of CPU for torch, transformers and sentence-transformers;
    with the export cached, OpenVINO and the tokenizers library are all a start needs."""
    import subprocess
    import sys

    Embedder(backend="openvino", cache_dir=str(tmp_path))  # exports (and imports torch) here
    script = (
        "import sys\n"
        "from rag.embedding import Embedder\n"
        f"e = Embedder(backend='openvino', cache_dir={str(tmp_path)!r})\n"
        "e.embed_documents_and_spans(['Bees\\nA colony. A hive.'], [[(5, 14), (15, 22)]])\n"
        "e.embed_query('Where do bees live?')\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@needs_openvino
def test_a_damaged_cache_entry_is_exported_again(tmp_path):
    Embedder(backend="openvino", cache_dir=str(tmp_path))
    (model_file,) = tmp_path.glob("*/model.xml")
    model_file.write_text("<net>truncated")
    again = Embedder(backend="openvino", cache_dir=str(tmp_path))
    assert again.embed_documents([TEXT]).shape == (1, again.dimension)
    assert "truncated" not in model_file.read_text()[:200]  # replaced, so the next start reads it


@needs_openvino
@pytest.mark.timeout(400)
def test_an_index_built_on_one_backend_is_searched_on_the_other(tmp_path, ov_cache):
    from rag.api import build_index, retrieve

    question = "When did Colombia recall its ambassador?"
    index = tmp_path / "index"
    results = {}
    for built_with, read_with in (("torch", "openvino"), ("openvino", "torch")):
        build_index(DEFAULT_CORPUS, index, full=True,
                    settings=load_settings(backend=built_with, encoder_cache_dir=ov_cache))
        settings = load_settings(backend=read_with, encoder_cache_dir=ov_cache)
        results[built_with] = retrieve(question, 3, index_dir=index, settings=settings)
    assert [p.text for p in results["torch"]] == [p.text for p in results["openvino"]]
    assert "recalled its ambassador" in results["torch"][0].text


@needs_openvino
def test_a_model_that_does_not_compile_stays_on_torch_under_auto(monkeypatch, ov_cache):
    Embedder(backend="openvino", cache_dir=ov_cache)  # the export is cached: only compiling fails

    def broken(*args, **kwargs):
        raise RuntimeError("no plugin for this CPU")

    monkeypatch.setattr(openvino_model.ExportedModel, "compile", broken)
    fallback = Embedder(backend="auto", cache_dir=ov_cache)
    assert fallback.backend == "torch" and fallback.embed_query("A question?").shape == (fallback.dimension,)
    with pytest.raises(RagError, match="cannot run model .* on OpenVINO: no plugin"):
        Embedder(backend="openvino", cache_dir=ov_cache)


def test_auto_takes_openvino_only_where_it_is_installed(monkeypatch):
    monkeypatch.setattr(openvino_model, "installed", lambda: False)
    assert choose_backend("auto") == "torch"
    with pytest.raises(RagError, match="needs the openvino package"):
        choose_backend("openvino")
    monkeypatch.setattr(openvino_model, "installed", lambda: True)
    assert choose_backend("auto") == "openvino" and choose_backend("torch") == "torch"


def test_threads_and_backend_are_checked_in_settings():
    assert resolve_threads(0) == physical_cores() >= 1 and resolve_threads(3) == 3
    with pytest.raises(ValueError, match="threads must be 0"):
        Settings(threads=-1)
    with pytest.raises(ValueError, match="backend must be one of auto, torch, openvino"):
        load_settings(backend="cuda")
    with pytest.raises(ValueError, match="precision must be one of"):
        Settings(precision="float16")


@pytest.mark.parametrize("backend", BACKENDS)
def test_threads_for_builds_queries_and_faiss_are_set_together(backend, ov_cache):
    import faiss
    import torch

    embedder = Embedder(backend=backend, threads=2, query_threads=1, cache_dir=ov_cache)
    assert (embedder.threads, embedder.query_threads) == (2, 1)
    assert faiss.omp_get_max_threads() == 1
    seen_in_thread = []  # FAISS's count is per thread: a web worker's search must see it too
    worker = threading.Thread(
        target=lambda: (embedder.embed_query("asked elsewhere"), seen_in_thread.append(faiss.omp_get_max_threads())))
    worker.start()
    worker.join()
    assert seen_in_thread == [1]
    embedder.embed_query("a question of its own")
    if backend == "torch":
        assert torch.get_num_threads() == 1
        embedder.embed_documents([TEXT])
        assert torch.get_num_threads() == 2
    else:
        embedder.embed_documents([TEXT])
        assert embedder._token_vectors(False) is not embedder._token_vectors(True)


def test_a_model_without_mean_pooling_gives_no_span_vectors(tmp_path):
    from sentence_transformers import SentenceTransformer, models

    path = resolve_model_path(load_settings().model)
    transformer = models.Transformer(path)
    cls_pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    SentenceTransformer(modules=[transformer, cls_pooling]).save(str(tmp_path / "cls-model"))

    embedder = Embedder(str(tmp_path / "cls-model"), cache_dir=str(tmp_path / "cache"))
    vectors, spans = embedder.embed_documents_and_spans([TEXT], [[BEES, TREATY]])
    assert not embedder.pools_spans
    assert spans == [None]
    assert vectors.shape == (1, embedder.dimension)
    on_torch = Embedder(str(tmp_path / "cls-model"), backend="torch", precision="float32")
    on_auto = Embedder(str(tmp_path / "cls-model"), precision="float32", cache_dir=str(tmp_path / "cache"))
    assert float(on_torch.embed_documents([TEXT])[0] @ on_auto.embed_documents([TEXT])[0]) >= 0.9999
