"""Builds killed at each write step, a second writer, and a dead writer's lock: the index survives."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from rag import build_index, retrieve
from rag.index.segments import SEGMENTS_DIR
from rag.index.writer import FAULT_VARIABLE
from rag.store import open_snapshot
from rag.types import RagError
from tests.conftest import SCIFACT_SAMPLE

QUERIES = ["vitamin D deficiency", "tumour growth in mice", "gene expression in cells"]


def _scifact_docs(count: int) -> list[dict]:
    with (SCIFACT_SAMPLE / "corpus.jsonl").open() as f:
        return [json.loads(next(f)) for _ in range(count)]


def _write(folder, docs) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (folder / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\n{doc['text']}\n")


def _state(index_dir) -> tuple:
    """What a reader sees: documents, their hashes, every chunk, and the top results."""
    snapshot = open_snapshot(index_dir)
    chunks = sorted((r.doc_id, r.start, r.end, r.text) for r in snapshot.chunks(
        [int(i) for i in range(snapshot.manifest["next_chunk_id"])]).values())
    results = [[(p.doc_id, p.start) for p in retrieve(q, 5, index_dir=index_dir)] for q in QUERIES]
    return snapshot.manifest["documents"], chunks, results


def _index_process(corpus, index_dir, fault: str | None = None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if fault:
        env[FAULT_VARIABLE] = fault
    return subprocess.Popen(
        [sys.executable, "-m", "rag", "index", "--corpus", str(corpus), "--index", str(index_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """A built index of 8 abstracts, and a corpus change (4 added, 2 edited, 2 deleted) to apply."""
    root = tmp_path_factory.mktemp("kill")
    docs = _scifact_docs(12)
    _write(root / "before", docs[:8])
    build_index(root / "before", root / "index-before")

    after = root / "after"
    shutil.copytree(root / "before", after)
    _write(after, docs[8:])
    for doc in docs[:2]:
        (after / f"{doc['_id']}.md").write_text(f"# {doc['title']}\n\nRevised. {doc['text']}\n")
    for doc in docs[2:4]:
        (after / f"{doc['_id']}.md").unlink()

    reference = root / "index-reference"
    shutil.copytree(root / "index-before", reference)
    assert _index_process(after, reference).wait() == 0
    return root, _state(root / "index-before"), _state(reference)


# Each write step of a build, and the state a build killed right after it must leave.
FAULTS = {"after-vectors": "before", "after-metadata": "before", "before-switch": "before",
          "after-switch": "complete"}


@pytest.mark.parametrize("step", FAULTS)
def test_a_build_killed_at_each_write_step_keeps_the_last_good_index(scenario, tmp_path, step):
    root, before, complete = scenario
    index_dir = tmp_path / "index"
    shutil.copytree(root / "index-before", index_dir)

    build = _index_process(root / "after", index_dir, fault=step)
    assert build.wait() == -signal.SIGKILL, f"the build did not reach {step}"

    assert _state(index_dir) == {"before": before, "complete": complete}[FAULTS[step]]
    build_index(root / "after", index_dir)
    assert _state(index_dir) == complete
    listed = {ref.name for ref in open_snapshot(index_dir).manifest.segments}
    before_listed = {ref.name for ref in open_snapshot(root / "index-before").manifest.segments}
    assert {p.name for p in (index_dir / SEGMENTS_DIR).iterdir()} <= listed | before_listed, (
        "the killed build's segments were not cleaned up")


def test_lock_of_a_killed_writer_does_not_block_the_next_build(tmp_path):
    corpus = tmp_path / "corpus"
    _write(corpus, _scifact_docs(2))
    index_dir = tmp_path / "index"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom rag.indexer import build_lock\n"
         f"with build_lock(__import__('pathlib').Path({str(index_dir)!r})):\n"
         "    print('locked', flush=True)\n    time.sleep(120)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RagError, match=f"another build.*pid {holder.pid}"):
        build_index(corpus, index_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert build_index(corpus, index_dir).added == 2
