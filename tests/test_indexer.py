"""Incremental, atomic builds on real corpora in temporary folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag import build_index, retrieve
from rag.chunking import split_sentences
from rag.config import load_settings
from rag.embedding import Embedder
from rag.indexer import build_lock
from rag.lexical import LexicalIndex
from rag.index.segments import SEGMENTS_DIR
from rag.store import CURRENT_FILE, MANIFEST_FILE, open_snapshot, read_current
from rag.types import IndexCorruptError, IndexMismatchError, RagError

ARTICLES = {
    "volcanoes.txt": "Volcanoes of Iceland\nEyjafjallajokull erupted in 2010 and grounded flights across Europe.",
    "bees.md": "# Honeybees\n\nA honeybee colony keeps its hive near 35 degrees Celsius in winter.",
    "tides.txt": "Tides\nThe Moon's gravity raises two tidal bulges on opposite sides of the Earth.",
}


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in ARTICLES.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def embedded_texts(monkeypatch):
    """Every text handed to the model, recorded while encoding still runs for real."""
    seen: list[str] = []
    original = Embedder.embed_documents_and_spans

    def recording(self, texts, spans, **kwargs):
        seen.extend(texts)
        return original(self, texts, spans, **kwargs)

    monkeypatch.setattr(Embedder, "embed_documents_and_spans", recording)
    return seen


def _top_doc(query: str, index_dir) -> str:
    return retrieve(query, 1, index_dir=index_dir)[0].doc_id


def test_first_build_indexes_every_file(corpus, tmp_path):
    stats = build_index(corpus, tmp_path / "index")
    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (3, 0, 0, 0)
    assert stats.skipped == []
    assert stats.chunks == 3
    assert _top_doc("When did the Icelandic volcano erupt?", tmp_path / "index") == "volcanoes.txt"


def test_incremental_build_follows_add_change_delete(corpus, tmp_path, embedded_texts):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    embedded_texts.clear()

    (corpus / "comets.txt").write_text("Comets\nHalley's Comet returns to the inner Solar System every 76 years.")
    (corpus / "bees.md").write_text("# Honeybees\n\nWorker bees perform a waggle dance to point at flowers.")
    (corpus / "tides.txt").unlink()
    stats = build_index(corpus, index_dir)

    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (1, 1, 1, 1)
    assert all("Eyjafjallajokull" not in text for text in embedded_texts), "unchanged file re-embedded"
    assert any("Halley" in text for text in embedded_texts)
    assert _top_doc("How often does Halley's Comet come back?", index_dir) == "comets.txt"
    bee_passage = retrieve("How do bees show where flowers are?", 1, index_dir=index_dir)[0]
    assert bee_passage.doc_id == "bees.md" and "waggle dance" in bee_passage.text
    hits = retrieve("Moon gravity tidal bulges", 5, index_dir=index_dir)
    assert "tides.txt" not in {p.doc_id for p in hits}
    assert set(open_snapshot(index_dir).manifest["documents"]) == {"bees.md", "comets.txt", "volcanoes.txt"}


def _sentence_places(snapshot, doc_id: str) -> list[tuple[str, int, int]]:
    text = snapshot.document(doc_id).text
    return [(doc_id, start, end) for start, end in split_sentences(text)]


def test_build_stores_a_vector_for_every_sentence(corpus, tmp_path):
    index_dir = tmp_path / "index"
    (corpus / "tides.txt").write_text(
        "Tides\nThe Moon's gravity raises two tidal bulges. The Sun adds a smaller pair. "
        + "Spring tides come when both pull along one line. " * 12
    )
    build_index(corpus, index_dir)
    snapshot = open_snapshot(index_dir)
    tides = next(d for d in snapshot.documents() if d.doc_id == "tides.txt")
    assert tides.chunks > 1  # sentences of several chunks, some in two
    for doc_id in ARTICLES:
        places = _sentence_places(snapshot, doc_id)
        stored = snapshot.sentence_vectors(places)
        assert set(stored) == set(places)
        assert all(abs(np.linalg.norm(v) - 1) < 0.01 for v in stored.values())


def test_changed_document_replaces_its_sentence_vectors(corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    old_places = _sentence_places(open_snapshot(index_dir), "bees.md")
    (corpus / "bees.md").write_text("# Honeybees\n\nWorkers dance. They point the way to the flowers.")
    (corpus / "tides.txt").unlink()
    build_index(corpus, index_dir)
    snapshot = open_snapshot(index_dir)
    new_places = _sentence_places(snapshot, "bees.md")
    assert set(snapshot.sentence_vectors(old_places + new_places)) == set(new_places)
    assert snapshot.sentence_vectors([("tides.txt", 0, 5), ("tides.txt", 6, 20)]) == {}


def test_unchanged_corpus_writes_no_new_version(corpus, tmp_path, embedded_texts):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    version = read_current(index_dir)
    embedded_texts.clear()
    stats = build_index(corpus, index_dir)
    assert stats.unchanged == 3 and stats.chunks == 3
    assert embedded_texts == []
    assert read_current(index_dir) == version


def test_full_rebuild_embeds_everything_again(corpus, tmp_path, embedded_texts):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    embedded_texts.clear()
    stats = build_index(corpus, index_dir, full=True)
    assert stats.added == 3 and len(embedded_texts) == 3


def test_bad_file_is_skipped_with_reason_and_the_rest_indexed(corpus, tmp_path):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<")
    (corpus / "empty.txt").write_text("")
    stats = build_index(corpus, tmp_path / "index")
    assert stats.added == 3
    skipped = dict(stats.skipped)
    assert set(skipped) == {"broken.pdf", "empty.txt"}
    assert all(reason for reason in skipped.values())


def test_a_file_that_breaks_keeps_its_previous_version(corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    (corpus / "tides.txt").write_bytes(b"\x00\x01\x02binary\xff\xfe" * 50)
    stats = build_index(corpus, index_dir)
    assert "previously indexed version is kept" in dict(stats.skipped)["tides.txt"]
    assert _top_doc("What raises tidal bulges?", index_dir) == "tides.txt"


def test_changed_chunking_asks_for_a_full_rebuild(corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    other = load_settings(chunk_tokens=64)
    with pytest.raises(IndexMismatchError, match="--full"):
        build_index(corpus, index_dir, settings=other)
    assert build_index(corpus, index_dir, settings=other, full=True).added == 3


def test_index_of_another_model_is_refused_with_the_fix(corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    other = load_settings(model="another/model")
    with pytest.raises(IndexMismatchError, match="another/model.*rag index --full"):
        retrieve("volcano", index_dir=index_dir, settings=other)


def test_interrupted_build_leaves_previous_index_whole(corpus, tmp_path, monkeypatch):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    before = [(p.doc_id, p.text) for p in retrieve("honeybee hive temperature", 3, index_dir=index_dir)]
    version = read_current(index_dir)

    (corpus / "comets.txt").write_text("Comets\nHalley's Comet returns every 76 years.")

    def crash(self, directory):
        raise KeyboardInterrupt  # Ctrl-C after vectors and texts were written

    monkeypatch.setattr(LexicalIndex, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, index_dir)

    assert read_current(index_dir) == version
    assert sorted(p.name for p in index_dir.glob("v-*")) == [version]
    listed = {ref.name for ref in open_snapshot(index_dir).manifest.segments}
    assert {p.name for p in (index_dir / SEGMENTS_DIR).iterdir()} == listed, "aborted segments left"
    after = [(p.doc_id, p.text) for p in retrieve("honeybee hive temperature", 3, index_dir=index_dir)]
    assert after == before
    monkeypatch.undo()
    assert build_index(corpus, index_dir).added == 1


def test_a_second_build_at_once_is_refused(corpus, tmp_path):
    index_dir = tmp_path / "index"
    with build_lock(index_dir):
        with pytest.raises(RagError, match="another build"):
            build_index(corpus, index_dir)
    assert not (index_dir / CURRENT_FILE).exists()


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RagError, match="does not exist"):
        build_index(tmp_path / "nowhere", tmp_path / "index")


def test_an_index_of_the_first_format_asks_for_a_full_rebuild(corpus, tmp_path):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    path = index_dir / read_current(index_dir) / MANIFEST_FILE
    path.write_text(json.dumps({"format_version": 1, "model": "m", "files": {}}))
    with pytest.raises(IndexCorruptError, match="format 1.*rag index --full"):
        retrieve("volcano", index_dir=index_dir)
    with pytest.raises(IndexCorruptError, match="rag index --full"):
        build_index(corpus, index_dir)
    assert build_index(corpus, index_dir, full=True).added == 3
    assert _top_doc("When did the Icelandic volcano erupt?", index_dir) == "volcanoes.txt"


def test_a_full_build_killed_midway_resumes_from_its_last_segment(corpus, tmp_path, monkeypatch, embedded_texts):
    import rag.index.writer as writer
    import rag.indexer as indexer

    monkeypatch.setattr(indexer, "EMBED_BATCH_CHUNKS", 1)
    monkeypatch.setattr(writer, "SEGMENT_CHUNKS", 1)  # every document is a segment of its own
    recorded = []

    def dies_at_the_second_segment(step):
        if step == "segment-recorded":
            recorded.append(step)
            if len(recorded) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_reached", dies_at_the_second_segment)
    index_dir = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, index_dir, full=True)
    assert read_current(index_dir) is None, "readers saw a half-built version"

    monkeypatch.setattr(writer, "_reached", lambda step: None)
    embedded_texts.clear()
    stats = build_index(corpus, index_dir, full=True)
    assert len(embedded_texts) == 1, "documents of recorded segments were embedded again"
    assert (stats.added, stats.unchanged, stats.chunks) == (1, 2, 3)
    assert not (index_dir / writer.PENDING_DIR).exists()
    assert _top_doc("When did the Icelandic volcano erupt?", index_dir) == "volcanoes.txt"
    assert _top_doc("Moon gravity tidal bulges", index_dir) == "tides.txt"


def test_a_pending_build_of_another_kind_is_not_resumed(corpus, tmp_path, monkeypatch, embedded_texts):
    import rag.index.writer as writer
    import rag.indexer as indexer

    monkeypatch.setattr(indexer, "EMBED_BATCH_CHUNKS", 1)
    monkeypatch.setattr(writer, "SEGMENT_CHUNKS", 1)

    def dies(step):
        if step == "segment-recorded":
            raise KeyboardInterrupt

    monkeypatch.setattr(writer, "_reached", dies)
    index_dir = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, index_dir, full=True)
    monkeypatch.setattr(writer, "_reached", lambda step: None)
    embedded_texts.clear()
    build_index(corpus, index_dir, settings=load_settings(chunk_tokens=64))
    assert len(embedded_texts) == 3
    assert open_snapshot(index_dir).manifest.chunking["max_tokens"] == 64
