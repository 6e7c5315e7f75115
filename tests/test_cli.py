"""The `rag` command as a user runs it, in a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import DEFAULT_CORPUS


def rag(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_index_then_search_shows_the_right_passage_first(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_text((DEFAULT_CORPUS / "colombia-israel-ties.txt").read_text())
    (corpus / "notes.bin").write_bytes(b"\x00")
    (corpus / "empty.md").write_text("")
    index = str(tmp_path / "index")

    built = rag("index", "--corpus", str(corpus), "--index", index)
    assert built.returncode == 0, built.stderr
    assert "1 added" in built.stdout and "2 skipped" in built.stdout
    assert "skipped empty.md: empty file" in built.stdout
    assert "skipped notes.bin:" in built.stdout

    found = rag("search", "When did Colombia recall its ambassador?", "-k", "2", "--index", index)
    assert found.returncode == 0, found.stderr
    first = found.stdout.split("[2]")[0]
    assert first.startswith("[1] ") and "(article.txt)" in first and "score" in first
    assert "Colombia recalled its ambassador" in first

    as_json = json.loads(rag("search", "coal exports", "--json", "-k", "3", "--index", index).stdout)
    assert len(as_json) == 3 and {"text", "doc_id", "title", "score", "start", "end", "page"} <= set(as_json[0])

    again = rag("index", "--corpus", str(corpus), "--index", index)
    assert "0 added, 0 updated, 0 removed, 1 unchanged" in again.stdout


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    missing = rag("search", "anything", "--index", str(tmp_path / "none"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("rag: error: no index") and "Traceback" not in missing.stderr
    empty = rag("search", "  ", "--index", str(tmp_path / "none"))
    assert empty.returncode == 2 and "non-empty" in empty.stderr
