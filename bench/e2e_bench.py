"""A real end-to-end run through the public API at ~100k chunks: build_index with the real
encoder, then change, remove and add one document each, then retrieve() and answer().

The corpus is SciFact's abstract sentences recombined: each document is a window of one to four
consecutive sentences of one abstract under a short first-line title, so most documents are
one short chunk (long chunks cost ~26 ms of CPU each to embed at one thread; 100k of them would
not fit a session). Questions are SciFact's. Run it under ``nice``, one thread; a killed build is
resumed by running the same command again (the corpus is reused, the build resumes from its
recorded segments).

    nice python bench/e2e_bench.py --documents 100000 --work /tmp/e2e --out /tmp/e2e/result.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAG_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rag import api  # noqa: E402
from rag.chunking import split_sentences  # noqa: E402
from rag.config import load_settings  # noqa: E402

SCIFACT = ROOT.parent / "shared" / "beir" / "scifact"


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds() -> tuple[float, float]:
    """CPU of this process and of its reaped children (the sandboxed parsers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def disk_usage(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def write_corpus(corpus: Path, documents: int) -> int:
    """Windows of 1, 2 and 3 sentences of each abstract, round robin, until ``documents``."""
    corpus.mkdir(parents=True, exist_ok=True)
    existing = sum(1 for _ in corpus.iterdir())
    if existing >= documents:
        return existing
    abstracts = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    sentences = [[a["text"][s:e] for s, e in split_sentences(a["text"])] for a in abstracts]
    written = 0
    for width in (1, 2, 3, 4):
        for abstract, parts in zip(abstracts, sentences):
            for start in range(0, len(parts) - width + 1):
                if written >= documents:
                    return written
                text = " ".join(parts[start:start + width])
                (corpus / f"a{abstract['_id']}-w{width}-s{start:02d}.txt").write_text(
                    f"SciFact {abstract['_id']} part {start}\n\n{text}\n")
                written += 1
    return written


class PeakDisk:
    """Samples the index folder's size while a build runs (the peak of a commit)."""

    def __init__(self, path: Path):
        self.path, self.peak, self._stop = path, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, disk_usage(self.path))
            except FileNotFoundError:  # a file removed while it was being listed
                pass
            self._stop.wait(0.2)

    def __enter__(self) -> "PeakDisk":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, disk_usage(self.path))


def timed_build(corpus: Path, index: Path, settings) -> dict:
    load, wall, (cpu, children) = load_average(), time.perf_counter(), cpu_seconds()
    with PeakDisk(index) as disk:
        stats = api.build_index(corpus, index, settings=settings, progress=True)
    after_cpu, after_children = cpu_seconds()
    return {"wall_s": round(time.perf_counter() - wall, 2), "cpu_s": round(after_cpu - cpu, 2),
            "parser_cpu_s": round(after_children - children, 2), "load_before": load,
            "load_after": load_average(), "chunks": stats.chunks, "added": stats.added,
            "updated": stats.updated, "removed": stats.removed, "peak_disk_mb": round(disk.peak / 1e6, 1),
            "disk_mb": round(disk_usage(index) / 1e6, 1)}


def change_one(corpus: Path, round_: int) -> None:
    """Rewrite one document, remove one and add one."""
    files = sorted(corpus.iterdir())
    changed = files[len(files) // 3]
    changed.write_text(changed.read_text() + f"\nRevised in round {round_}: the cohort was re-examined.\n")
    files[len(files) // 2 + round_].unlink()
    (corpus / f"added-{round_}.txt").write_text(
        f"Added note {round_}\n\nA newly added document about vitamin D and bone density, round {round_}.\n")


def percentiles(values: list[float]) -> dict:
    values = sorted(values)
    return {"p50_ms": round(1000 * statistics.median(values), 2),
            "p90_ms": round(1000 * values[int(0.9 * (len(values) - 1))], 2)}


def timed_calls(call, questions: list[str]) -> dict:
    call(questions[0])  # warm: model loaded, reader open
    walls, cpus = [], []
    for question in questions:
        wall, cpu = time.perf_counter(), time.process_time()
        call(question)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return {"wall": percentiles(walls), "cpu": percentiles(cpus), "questions": len(questions),
            "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--answers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    corpus, index = args.work / "corpus", args.work / "index"
    settings = load_settings(threads=1, query_threads=1)
    result: dict = {"documents": write_corpus(corpus, args.documents), "threads": 1}

    def save() -> None:
        args.out.write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1), flush=True)

    result["full_build"] = timed_build(corpus, index, settings)
    result["full_build"]["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    save()
    result["changes"] = []
    for round_ in range(args.rounds):
        change_one(corpus, round_)
        result["changes"].append(timed_build(corpus, index, settings))
        save()
    questions = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").open()]
    result["retrieve_k10"] = timed_calls(
        lambda q: api.retrieve(q, 10, index_dir=index, settings=settings), questions[:args.questions])
    result["answer"] = timed_calls(
        lambda q: api.answer(q, index_dir=index, settings=settings), questions[:args.answers])
    save()


if __name__ == "__main__":
    main()
