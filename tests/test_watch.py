"""Watch mode follows files added, changed and removed in the corpus folder."""

from __future__ import annotations

import threading
import time

from rag import retrieve
from rag.watch import corpus_signature, watch


def _wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_signature_changes_with_any_edit(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    first = corpus_signature(tmp_path)
    (tmp_path / "a.txt").write_text("two!")
    assert corpus_signature(tmp_path) != first


def test_watch_updates_the_index_after_changes_settle(tmp_path):
    corpus, index_dir = tmp_path / "corpus", tmp_path / "index"
    corpus.mkdir()
    (corpus / "owls.txt").write_text("Owls\nThe barn owl hunts voles at night by sound alone.")
    builds, stop = [], threading.Event()
    watcher = threading.Thread(
        target=watch, args=(corpus, index_dir),
        kwargs=dict(interval_s=0.2, debounce_s=0.5, on_build=builds.append, stop=stop),
    )
    watcher.start()
    try:
        assert _wait_for(lambda: len(builds) == 1)
        assert builds[0].added == 1

        (corpus / "bats.txt").write_text("Bats\nMicrobats find moths by echolocation.")
        assert _wait_for(lambda: len(builds) == 2)
        assert builds[1].added == 1 and builds[1].unchanged == 1
        assert retrieve("echolocation moths", 1, index_dir=index_dir)[0].doc_id == "bats.txt"

        (corpus / "owls.txt").unlink()
        assert _wait_for(lambda: len(builds) == 3)
        assert builds[2].removed == 1
        assert {p.doc_id for p in retrieve("barn owl voles", 3, index_dir=index_dir)} == {"bats.txt"}
    finally:
        stop.set()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
