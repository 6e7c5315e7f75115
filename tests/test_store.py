"""The local store: damaged files reported with the fix, a damaged current version falling back
to the last good one, readers pinned to their version while builds commit and clean up."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from rag import build_index, retrieve
from rag.index.manifest import DOCUMENTS_FILE, Manifest
from rag.index.segments import LEXICAL_DIR, META_FILE, SEGMENT_FILE, SEGMENTS_DIR, VECTORS_FILE
from rag.retriever import Retriever
from rag.store import CURRENT_FILE, MANIFEST_FILE, Snapshot, open_snapshot, read_current
from rag.types import IndexCorruptError, IndexNotFoundError

ARTICLES = {
    "volcanoes.txt": "Volcanoes of Iceland\nEyjafjallajokull erupted in 2010 and grounded flights across Europe.",
    "bees.md": "# Honeybees\n\nA honeybee colony keeps its hive near 35 degrees Celsius in winter.",
}


@pytest.fixture
def index_copy(default_index, tmp_path):
    """A private copy of the default-corpus index that a test may damage."""
    target = tmp_path / "index"
    shutil.copytree(default_index, target)
    return target


def _version(index_dir):
    return index_dir / read_current(index_dir)


def _segment(index_dir):
    [ref] = Manifest.read(_version(index_dir) / MANIFEST_FILE).segments
    return index_dir / SEGMENTS_DIR / ref.name


def _corpus(folder, articles):
    folder.mkdir(exist_ok=True)
    for name, text in articles.items():
        (folder / name).write_text(text)
    return folder


def test_snapshot_reads_back_documents_and_chunks(default_index):
    snapshot = open_snapshot(default_index)
    [info] = snapshot.documents()
    doc = snapshot.document(info.doc_id)
    records = snapshot.chunks(list(range(len(snapshot))))
    assert info.chunks == len(snapshot) == len(records)
    assert all(doc.text[r.start:r.end] == r.text for r in records.values())
    assert info.pages is None and all(r.page is None for r in records.values())


def test_cached_chunk_records_are_those_read(tmp_path, make_pdf, monkeypatch):
    """Records served from the process-wide cache, however small, equal the ones SQLite gives:
    the same passages (text, offsets, page, score) on a real index with pages and deletions."""
    from rag import store

    corpus = _corpus(tmp_path / "corpus", {**ARTICLES, "gone.txt": "Gone\nA page about volcanoes."})
    make_pdf(corpus / "guide.pdf", [" ".join(["Volcanoes erupt ash over Iceland."] * 60),
                                    " ".join(["Honeybees warm their hive in winter."] * 60)])
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir)
    (corpus / "gone.txt").unlink()
    build_index(corpus, index_dir)  # a second version: the first segment with a deleted document
    queries = ["volcanoes erupting", "bees in winter", "Iceland flights 2010", "hive temperature"]

    def results(cache):
        monkeypatch.setattr(store, "_records", cache)
        retriever = Retriever(index_dir)
        snapshot = retriever.snapshot()
        return ([retriever.search(q, k) for q in queries for k in (1, 3, 50)]
                + [retriever.search_documents(q, 5) for q in queries],
                snapshot.chunks(list(range(-1, 100))))

    uncached = results(store._RecordCache(0))
    assert len(uncached[1]) > 4 and any(r.page == 2 for r in uncached[1].values())
    assert "gone.txt" not in {r.doc_id for r in uncached[1].values()}
    warm = store._RecordCache(1000)
    assert results(warm) == uncached == results(warm)  # cold, then every record from the cache
    assert results(store._RecordCache(2)) == uncached  # evicting all the time


def test_no_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="rag index"):
        retrieve("anything", index_dir=tmp_path / "empty")


@pytest.mark.parametrize("name", [VECTORS_FILE, META_FILE, f"{LEXICAL_DIR}/rows.npy"])
def test_truncated_file_names_the_file_and_the_fix(index_copy, name):
    path = _segment(index_copy) / name
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match=rf"{name}.*rag index --full"):
        open_snapshot(index_copy)


@pytest.mark.parametrize("name", [META_FILE, VECTORS_FILE, f"{LEXICAL_DIR}/terms.txt"])
def test_edited_file_of_the_same_size_is_detected(index_copy, name):
    path = _segment(index_copy) / name
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=name):
        open_snapshot(index_copy)


@pytest.mark.parametrize("name", [VECTORS_FILE, META_FILE, SEGMENT_FILE])
def test_missing_segment_file_names_it(index_copy, name):
    (_segment(index_copy) / name).unlink()
    with pytest.raises(IndexCorruptError, match=rf"{name} is missing.*--full"):
        open_snapshot(index_copy)


def test_missing_manifest_names_it(index_copy):
    (_version(index_copy) / MANIFEST_FILE).unlink()
    with pytest.raises(IndexCorruptError, match=rf"{MANIFEST_FILE} is missing.*--full"):
        open_snapshot(index_copy)


def test_damaged_document_table_is_reported(index_copy):
    path = _version(index_copy) / DOCUMENTS_FILE
    path.write_text(path.read_text()[:-5])
    with pytest.raises(IndexCorruptError, match=rf"{DOCUMENTS_FILE}.*--full"):
        open_snapshot(index_copy)


def test_manifest_from_a_newer_version_is_refused(index_copy):
    path = _version(index_copy) / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(IndexCorruptError, match="newer version"):
        open_snapshot(index_copy)


def test_current_pointing_nowhere_is_reported(index_copy):
    (index_copy / CURRENT_FILE).write_text("v-gone")
    with pytest.raises(IndexCorruptError, match="v-gone"):
        open_snapshot(index_copy)


def test_full_rebuild_repairs_a_damaged_index(index_copy):
    from tests.conftest import DEFAULT_CORPUS

    (_segment(index_copy) / VECTORS_FILE).write_bytes(b"garbage")
    stats = build_index(DEFAULT_CORPUS, index_copy, full=True)
    assert stats.added == 1
    assert len(open_snapshot(index_copy)) == stats.chunks


def test_a_damaged_current_version_falls_back_to_the_last_good_one(tmp_path, caplog):
    corpus, index_dir = _corpus(tmp_path / "corpus", ARTICLES), tmp_path / "index"
    build_index(corpus, index_dir)
    good = read_current(index_dir)
    (corpus / "comets.txt").write_text("Comets\nHalley's Comet returns every 76 years.")
    build_index(corpus, index_dir)
    manifest = _version(index_dir) / MANIFEST_FILE
    manifest.write_text(manifest.read_text()[:50])

    with caplog.at_level(logging.WARNING):
        snapshot = open_snapshot(index_dir)
    assert snapshot.path.name == good
    assert "damaged" in snapshot.fallback_reason and MANIFEST_FILE in snapshot.fallback_reason
    assert good in caplog.text
    assert {d.doc_id for d in snapshot.documents()} == set(ARTICLES)
    snapshot.close()

    build_index(corpus, index_dir)  # the next build starts from the good version and is whole
    assert {d.doc_id for d in open_snapshot(index_dir).documents()} == set(ARTICLES) | {"comets.txt"}


def test_a_held_version_survives_later_builds_and_goes_once_released(tmp_path):
    corpus, index_dir = _corpus(tmp_path / "corpus", ARTICLES), tmp_path / "index"
    build_index(corpus, index_dir)
    pinned = open_snapshot(index_dir)
    before = pinned.chunks(list(range(len(pinned))))
    for n in range(3):
        (corpus / "bees.md").write_text(f"# Honeybees\n\nRevision {n}: bees dance to point at flowers.")
        (corpus / f"extra-{n}.txt").write_text(f"Extra {n}\nA note about lighthouse number {n}.")
        build_index(corpus, index_dir)
    assert pinned.path.exists() and read_current(index_dir) != pinned.path.name
    assert pinned.chunks(list(range(len(pinned)))) == before
    assert "35 degrees" in pinned.document("bees.md").text
    assert {d.doc_id for d in pinned.documents()} == set(ARTICLES)
    assert [c for c, _ in pinned.lexical_scores("honeybee hive").top(5)] == [
        c for c, r in before.items() if r.doc_id == "bees.md"]

    pinned.close()
    (corpus / "extra-0.txt").unlink()
    build_index(corpus, index_dir)
    assert not pinned.path.exists()
    versions = sorted(p.name for p in index_dir.glob("v-*"))
    assert len(versions) == 2 and versions[-1] == read_current(index_dir)
    listed = {r.name for v in versions for r in Manifest.read(index_dir / v / MANIFEST_FILE).segments}
    assert {p.name for p in (index_dir / SEGMENTS_DIR).iterdir()} == listed


def test_a_question_does_not_wait_for_the_next_version_to_open(tmp_path, monkeypatch):
    corpus, index_dir = _corpus(tmp_path / "corpus", ARTICLES), tmp_path / "index"
    build_index(corpus, index_dir)
    retriever = Retriever(index_dir)
    old = retriever.snapshot()
    (corpus / "comets.txt").write_text("Comets\nHalley's Comet returns every 76 years.")
    build_index(corpus, index_dir)

    opening, release = threading.Event(), threading.Event()
    original = Snapshot.__init__

    def slow_open(self, *args, **kwargs):
        opening.set()
        release.wait(30)
        original(self, *args, **kwargs)

    monkeypatch.setattr(Snapshot, "__init__", slow_open)
    switching = threading.Thread(target=retriever.snapshot)
    switching.start()
    assert opening.wait(30)
    with retriever._lock:  # a question meanwhile would take this lock: nobody holds it
        pass
    assert retriever._loaded is old
    release.set()
    switching.join(30)
    assert retriever.snapshot() is not old and "comets.txt" in {d.doc_id for d in retriever.documents()}


def test_incremental_index_scores_as_a_full_rebuild_does(tmp_path, monkeypatch):
    """However a version is split into segments, its lexical and dense scores are those of one
    index over its live chunks (BM25 statistics are the version's, not a segment's)."""
    import rag.index.writer as writer

    monkeypatch.setattr(writer, "MERGE_FANOUT", 2)
    monkeypatch.setattr(writer, "SMALLEST_CLASS", 1)
    corpus, index_dir = _corpus(tmp_path / "corpus", ARTICLES), tmp_path / "index"
    build_index(corpus, index_dir)
    for n in range(4):
        (corpus / f"note-{n}.txt").write_text(f"Note {n}\nThe honeybee note {n} mentions hives and volcano ash.")
        build_index(corpus, index_dir)
    (corpus / "note-1.txt").unlink()
    (corpus / "bees.md").write_text("# Honeybees\n\nWorker bees perform a waggle dance near the hive.")
    build_index(corpus, index_dir)
    full_dir = tmp_path / "full"
    build_index(corpus, full_dir, full=True)

    incremental, full = open_snapshot(index_dir), open_snapshot(full_dir)
    assert len(incremental.manifest.segments) < 6, "segments were not merged"
    assert len(incremental) == len(full)
    def by_place(snapshot, ranked):  # chunk ids differ between the two; places and scores do not
        records = snapshot.chunks([c for c, _ in ranked])
        return sorted((records[c].doc_id, records[c].start, round(score, 4)) for c, score in ranked)

    rng = np.random.default_rng(0)
    for query in ("honeybee hive", "volcano ash note", "waggle dance"):
        assert by_place(incremental, incremental.lexical_scores(query).top(10)) == by_place(
            full, full.lexical_scores(query).top(10))
        vector = rng.normal(size=full.manifest.dimension).astype(np.float32)
        vector /= np.linalg.norm(vector)
        assert [p[:2] for p in by_place(incremental, incremental.search_dense(vector, 5))] == [
            p[:2] for p in by_place(full, full.search_dense(vector, 5))]
    assert incremental.lexical.vocabulary() == full.lexical.vocabulary()


def test_a_version_read_by_another_process_is_kept_until_it_lets_go(tmp_path):
    corpus, index_dir = _corpus(tmp_path / "corpus", ARTICLES), tmp_path / "index"
    build_index(corpus, index_dir)
    reader = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom rag.store import open_snapshot\n"
         "snapshot = open_snapshot(sys.argv[1])\nprint(snapshot.path.name, flush=True)\ntime.sleep(120)\n",
         str(index_dir)], stdout=subprocess.PIPE, text=True)
    try:
        held = reader.stdout.readline().strip()
        for n in range(2):
            (corpus / f"extra-{n}.txt").write_text(f"Extra {n}\nA note about lighthouse number {n}.")
            build_index(corpus, index_dir)
        assert (index_dir / held).exists(), "a build removed a version another process reads"
    finally:
        reader.kill()
        reader.wait()
        reader.stdout.close()
    (corpus / "extra-0.txt").unlink()
    build_index(corpus, index_dir)
    assert not (index_dir / held).exists()


def test_document_pages_come_from_the_store_across_segments_and_deletions(tmp_path):
    """Listing pages are filtered and cut in SQLite, yet match a filter over every document:
    documents spread over several segments, some deleted or replaced in newer ones."""
    corpus = _corpus(tmp_path / "corpus", {f"note-{i:02d}.txt": f"Note {i} Été\nTide table {i}.\n" for i in range(8)})
    index = tmp_path / "index"
    build_index(corpus, index)
    (corpus / "note-03.txt").unlink()
    (corpus / "note-05.txt").write_text("Harbour ÉTÉ log\nChanged text.\n")
    (corpus / "extra.md").write_text("# Harbour extra\n\nA new note.\n")
    build_index(corpus, index)
    snapshot = open_snapshot(index)
    assert len(snapshot.manifest.segments) >= 2
    everything = snapshot.documents()
    for search, offset, limit in [("", 0, 3), ("", 6, 3), ("", 99, 4), ("harbour", 0, 5), ("été", 2, 2),
                                  ("NOTE-0", 0, 25), ("nothing like it", 0, 25)]:
        listing = snapshot.document_page(search, offset, limit)
        needle = search.casefold()
        expected = [d for d in everything if needle in d.doc_id.casefold() or needle in d.title.casefold()]
        assert listing.matching == len(expected) and listing.total == len(everything) == 8
        assert listing.documents == expected[listing.offset:listing.offset + limit]
        assert listing.offset == (min(offset, (len(expected) - 1) // limit * limit) if expected else 0)


def test_a_new_version_counts_the_words_of_its_new_segments_only(tmp_path, monkeypatch):
    """The vocabulary answers check spelling against is counted per segment, once per process:
    after a commit only the new segment's and the deleted documents' texts are read, and the
    result is the vocabulary of the live documents."""
    import rag.store as store
    from rag.text import Vocabulary

    corpus = _corpus(tmp_path / "corpus", ARTICLES)
    index = tmp_path / "index"
    build_index(corpus, index)
    first = open_snapshot(index)
    first.vocabulary()
    (corpus / "bees.md").write_text("# Honeybees\n\nWorker bees perform a waggle dance near the hive.")
    (corpus / "tides.txt").write_text("Tides\nThe harbour tide table lists spring tides.")
    build_index(corpus, index)
    second = open_snapshot(index)
    read = []
    texts_and_titles = store._texts_and_titles
    monkeypatch.setattr(store, "_texts_and_titles", lambda segment, doc_ids=None: read.append(
        (segment.path.name, doc_ids)) or texts_and_titles(segment, doc_ids))
    vocabulary = second.vocabulary()
    old_segment = first.manifest.segments[0].name
    assert (old_segment, None) not in read, "the shared segment was read again"
    assert (old_segment, ["bees.md"]) in read  # the replaced document's old text, to subtract
    documents = second.documents()
    live = Vocabulary([second.document(d.doc_id).text for d in documents] + [d.title for d in documents])
    for word in ("honeybee", "colony", "waggle", "harbour", "tides", "Eyjafjallajokull", "celsius",
                 "hive", "dancee", "wintr", "flihgts"):
        assert (vocabulary.match(word), word in vocabulary) == (live.match(word), word in live), word
    assert vocabulary.match("colony") is None  # only in the replaced text


def test_files_as_the_build_stamped_them_are_not_read_again_and_edited_ones_are(tmp_path, monkeypatch):
    from rag.index import segments

    corpus, index_dir = _corpus(tmp_path / "corpus", ARTICLES), tmp_path / "index"
    build_index(corpus, index_dir)
    monkeypatch.setattr(segments, "_verified", set())  # as a new process starts
    checksummed = []
    real_sha256 = segments.file_sha256
    monkeypatch.setattr(segments, "file_sha256", lambda path: checksummed.append(path.name) or real_sha256(path))
    open_snapshot(index_dir).close()
    assert checksummed == []

    shutil.copytree(index_dir, tmp_path / "copy")  # other inodes: verified in full
    open_snapshot(tmp_path / "copy").close()
    assert VECTORS_FILE in checksummed and META_FILE in checksummed

    monkeypatch.setattr(segments, "_verified", set())
    with open(_segment(index_dir) / VECTORS_FILE, "r+b") as f:  # same file, same size, edited
        f.seek(-10, 2)
        byte = f.read(1)
        f.seek(-10, 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IndexCorruptError, match=rf"{VECTORS_FILE}.*--full"):
        open_snapshot(index_dir)
