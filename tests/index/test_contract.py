"""One suite of index behaviour, run against every backend: the local one, milvus-lite 2.5.1
(BM25 and hybrid) and a real Milvus 2.3.5 standalone in a loopback-only network namespace (dense
search, aliases, restart durability).

Whatever the backend, the same corpus gives the same passages with the same scores, an update
costs what changed and keeps the other chunks' ids, a request pinned to a version reads it whole
while a build switches to the next, and answers quote their sources exactly.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag import build_index
from rag.api import answer, document, document_page, documents
from rag.index.backends import current_version
from rag.retriever import Retriever
from rag.types import RagError

ARTICLES = {
    "tarnvik.txt": (
        "The Tarnvik volcano erupted on 14 March 1821 after two centuries of silence. "
        "Ash from the eruption fell on the fishing villages of the northern coast for nine days. "
        "The harbour master of Selby recorded that the sea turned grey and the herring left. "
        "Geologists now date the caldera to an older collapse about eleven thousand years ago."
    ),
    "lighthouse.md": (
        "# The Kessock lighthouse\n\n"
        "The Kessock lighthouse was first lit in 1899 with a paraffin lamp. "
        "Its keeper, Morag Innes, kept the log for thirty-one years without missing a night. "
        "The lamp was electrified in 1953 and the keepers left in 1987, when it became automatic."
    ),
    "orchard.txt": (
        "The Halden orchard grows forty-two varieties of apple on a south-facing slope. "
        "Its oldest tree, a Bramley planted in 1911, still gives about two hundred kilograms a year. "
        "Cider from the orchard is pressed every October in a barn by the river."
    ),
}
CHANGED_ORCHARD = (
    "The Halden orchard grows forty-two varieties of apple on a south-facing slope. "
    "In 2024 a late frost destroyed the blossom and the harvest fell to a tenth of its usual size. "
    "Cider from the orchard is pressed every October in a barn by the river."
)
NEW_ARTICLE = (
    "The Varne ferry crossed the strait twice a day from 1930 until the bridge opened in 1974. "
    "Its last captain, Ellis Ward, sailed the final crossing with the mayor on board."
)


def write_corpus(root: Path) -> Path:
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in ARTICLES.items():
        (corpus / name).write_text(text)
    return corpus


def places(passages) -> list[tuple[str, int, int]]:
    return [(p.doc_id, p.start, p.end) for p in passages]


@pytest.mark.timeout(600)
def test_build_search_and_answer_match_the_local_backend(backend, tmp_path):
    corpus = write_corpus(tmp_path)
    settings, index_dir = backend.settings(), backend.index_dir()
    stats = build_index(corpus, index_dir, settings=settings)
    assert (stats.added, stats.updated, stats.removed, stats.chunks) == (3, 0, 0, stats.chunks)
    assert stats.chunks >= 3

    retriever = Retriever(index_dir, settings)
    question = "When did the Tarnvik volcano erupt?"
    passages = retriever.search(question, k=3)
    assert passages[0].doc_id == "tarnvik.txt"
    assert "14 March 1821" in passages[0].text
    for p in passages:
        assert document(p.doc_id, index_dir=index_dir, settings=settings).text[p.start : p.end] == p.text

    # The same passages with the same scores as the local backend, in the same mode.
    local_dir = tmp_path / "local-index"
    local_settings = settings.with_overrides(index_backend="local")
    build_index(corpus, local_dir, settings=local_settings)
    local = Retriever(local_dir, local_settings)
    modes = ("hybrid", "dense", "lexical") if backend.has_bm25 else ("dense",)
    for mode in modes:
        for query in (question, "Who kept the lighthouse log?", "apple varieties cider October"):
            got, expected = retriever.search(query, k=4, mode=mode), local.search(query, k=4, mode=mode)
            assert places(got) == places(expected), (mode, query)
            assert [p.score for p in got] == pytest.approx([p.score for p in expected], abs=1e-4)
            assert [p.similarity for p in got] == pytest.approx([p.similarity for p in expected], abs=1e-4)

    listed = documents(index_dir=index_dir, settings=settings)
    assert [d.doc_id for d in listed] == sorted(ARTICLES)
    assert sum(d.chunks for d in listed) == stats.chunks
    page = document_page(index_dir, search="ORCHARD", settings=settings)
    assert [d.doc_id for d in page.documents] == ["orchard.txt"] and (page.matching, page.total) == (1, 3)
    page = document_page(index_dir, offset=5, limit=2, settings=settings)
    assert page.offset == 2 and page.documents == listed[2:]
    lighthouse = document("lighthouse.md", index_dir=index_dir, settings=settings).text
    assert lighthouse.startswith("The Kessock lighthouse\n\n") and "#" not in lighthouse  # Markdown, rendered

    reply = answer("Who kept the log of the Kessock lighthouse?", index_dir=index_dir, settings=settings)
    assert reply.found and reply.citations
    assert "Morag Innes" in reply.text
    for c in reply.citations:
        assert document(c.doc_id, index_dir=index_dir, settings=settings).text[c.start : c.end] == c.quote


@pytest.mark.timeout(600)
def test_update_and_delete_cost_the_change_and_pinned_readers_keep_their_version(backend, tmp_path):
    corpus = write_corpus(tmp_path)
    settings, index_dir = backend.settings(), backend.index_dir()
    build_index(corpus, index_dir, settings=settings)
    retriever = Retriever(index_dir, settings)
    pinned = retriever.snapshot()
    lighthouse_before = {p.chunk_id for p in retriever.search("Kessock lighthouse keeper", k=3)
                         if p.doc_id == "lighthouse.md"}
    old_version = current_version(settings, index_dir)

    # Requests keep running while the build switches versions: each reads one version whole.
    errors, seen, done = [], set(), threading.Event()

    def ask_while_building():
        for _ in range(2000):
            if done.is_set():
                return
            try:
                snapshot = retriever.snapshot()
                for p in retriever.search("What happened to the orchard harvest?", k=2, snapshot=snapshot):
                    assert snapshot.document(p.doc_id).text[p.start : p.end] == p.text
                seen.add(len(snapshot))
            except Exception as e:  # any error during the switch fails the test
                errors.append(e)
                return

    reader = threading.Thread(target=ask_while_building)
    reader.start()
    (corpus / "orchard.txt").write_text(CHANGED_ORCHARD)
    (corpus / "tarnvik.txt").unlink()
    (corpus / "ferry.txt").write_text(NEW_ARTICLE)
    try:
        stats = build_index(corpus, index_dir, settings=settings)
    finally:
        done.set()
        reader.join(timeout=60)
    assert not errors, errors
    assert (stats.added, stats.updated, stats.removed, stats.unchanged) == (1, 1, 1, 1)
    assert current_version(settings, index_dir) != old_version

    # The pinned reader still sees the version it opened.
    assert "14 March 1821" in pinned.document("tarnvik.txt").text
    old_hits = retriever.search("When did the Tarnvik volcano erupt?", k=1, snapshot=pinned)
    assert old_hits[0].doc_id == "tarnvik.txt"

    # New requests see the new version: the removed document is gone, the changed one changed.
    current = retriever.snapshot()
    assert current is not pinned
    with pytest.raises(KeyError):
        current.document("tarnvik.txt")
    assert all(p.doc_id != "tarnvik.txt" for p in retriever.search("Tarnvik volcano eruption ash", k=5))
    frost = retriever.search("What destroyed the orchard blossom in 2024?", k=1)
    assert frost[0].doc_id == "orchard.txt" and "late frost" in frost[0].text
    assert retriever.search("last captain of the ferry", k=1)[0].doc_id == "ferry.txt"
    assert {d.doc_id for d in current.documents()} == {"ferry.txt", "lighthouse.md", "orchard.txt"}
    assert len(current) == sum(d.chunks for d in current.documents())
    # The unchanged document kept its chunk ids: nothing of it was embedded again.
    lighthouse_after = {p.chunk_id for p in retriever.search("Kessock lighthouse keeper", k=3)
                        if p.doc_id == "lighthouse.md"}
    assert lighthouse_after == lighthouse_before

    # A build with nothing to do changes nothing.
    again = build_index(corpus, index_dir, settings=settings)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    assert current_version(settings, index_dir) == current_version(settings, index_dir)


# ---------------------------------------------------------------- Milvus 2.3.5 standalone only


@pytest.mark.timeout(600)
def test_standalone_without_bm25_says_so_and_survives_a_kill(milvus_standalone, tmp_path):
    from pymilvus import MilvusClient

    from tests.index.conftest import Backend

    backend = Backend("milvus-standalone", milvus_standalone.uri, tmp_path, milvus_standalone)
    corpus = write_corpus(tmp_path)
    settings, index_dir = backend.settings(), backend.index_dir()
    build_index(corpus, index_dir, settings=settings)
    retriever = Retriever(index_dir, settings)

    # No silent half-feature: the collection has no sparse field, and keyword search says why.
    client = MilvusClient(milvus_standalone.uri)
    version = current_version(settings, index_dir)
    fields = {f["name"] for f in client.describe_collection(f"{version}_chunks")["fields"]}
    assert "sparse" not in fields and "dense" in fields
    for mode in ("hybrid", "lexical"):
        with pytest.raises(RagError, match=r"no BM25.*Milvus >= 2.5.*dense"):
            retriever.search("Tarnvik", k=2, mode=mode)

    # The version is an alias target.
    assert client.describe_alias(settings.milvus_collection)["collection_name"] == f"{version}_chunks"
    before = places(retriever.search("When did the Tarnvik volcano erupt?", k=3))
    client.close()

    # SIGKILL (Milvus ignores SIGTERM) and restart on the same data: the index is all there.
    milvus_standalone.stop()
    milvus_standalone.start()
    reopened = Retriever(index_dir, settings)
    assert current_version(settings, index_dir) == version
    assert places(reopened.search("When did the Tarnvik volcano erupt?", k=3)) == before
    assert len(reopened.snapshot()) == len(retriever.snapshot())
