"""The web chat under load: concurrent chat sessions while an upload is being indexed.

Starts ``python app.py`` on a free 127.0.0.1 port over a copy of the default corpus, then runs
SESSIONS client sessions, each asking QUESTIONS seed questions in turn, while another client
uploads a batch of SciFact abstracts (so the indexer is busy for most of the run). Every answer is
checked: answerable questions must quote their evidence, unanswerable ones must cite nothing.
Bounded: a fixed number of requests, each with a timeout; nothing leaves 127.0.0.1.

    python bench/load_bench.py --sessions 20 --questions 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from gradio_client import Client, handle_file

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEED = [json.loads(line) for line in (SHARED / "eval" / "seed_questions.jsonl").open()]
REQUEST_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_app(work: Path, threads: int) -> tuple[subprocess.Popen, str]:
    corpus, index = work / "corpus", work / "index"
    shutil.copytree(ROOT / "corpus", corpus)
    subprocess.run([sys.executable, "-m", "rag", "index", "--corpus", str(corpus), "--index", str(index)],
                   check=True, capture_output=True)
    port = _free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(work / "uploads"), RAG_THREADS=str(threads), HF_HUB_OFFLINE="1")
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index",
                            str(index), "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "config", timeout=2).close()
            return app, url
        except OSError:
            time.sleep(0.5)
    app.kill()
    raise SystemExit("app did not start within 180 s")


def upload_batch(work: Path, documents: int) -> list[str]:
    folder = work / "batch"
    folder.mkdir()
    paths = []
    with (SHARED / "beir" / "scifact" / "corpus.jsonl").open() as f:
        for _ in range(documents):
            doc = json.loads(next(f))
            path = folder / f"scifact-{doc['_id']}.md"
            path.write_text(f"# {doc['title']}\n\n{doc['text']}\n")
            paths.append(str(path))
    return paths


def check(item: dict, answer: dict) -> str | None:
    """Why this answer is wrong, or None."""
    if not item["answerable"]:
        return None if not answer["found"] and not answer["citations"] else "answered the unanswerable"
    quotes = " ".join(c["quote"] for c in answer["citations"])
    missing = [e for e in item["evidence"] if e not in quotes]
    return f"evidence not quoted: {missing}" if missing or not answer["found"] else None


def session(url: str, number: int, questions: int, results: list, lock: threading.Lock) -> None:
    client = Client(url, verbose=False)
    for turn in range(questions):
        item = SEED[(number + turn) % len(SEED)]
        start = time.perf_counter()
        try:
            job = client.submit(item["question"], [], api_name="/chat")
            *_, answer = job.result(timeout=REQUEST_TIMEOUT_S)
            outcome = check(item, answer)
        except Exception as e:  # counted, never fatal: the point is to see every failure
            outcome = f"error: {type(e).__name__}: {e}"
        with lock:
            results.append((time.perf_counter() - start, outcome))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--questions", type=int, default=5, help="questions per session")
    parser.add_argument("--upload-docs", type=int, default=300, help="SciFact abstracts uploaded meanwhile")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the app")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-load-"))
    app, url = start_app(work, args.threads)
    try:
        batch = upload_batch(work, args.upload_docs)
        results, lock, peak = [], threading.Lock(), [_rss_mb(app.pid)]
        uploader_client = Client(url, verbose=False)
        upload = uploader_client.submit([handle_file(p) for p in batch], api_name="/upload")
        time.sleep(2)  # the upload is being indexed when the questions start
        started = time.perf_counter()
        sessions = [threading.Thread(target=session, args=(url, n, args.questions, results, lock))
                    for n in range(args.sessions)]
        for t in sessions:
            t.start()
        while any(t.is_alive() for t in sessions):
            peak.append(_rss_mb(app.pid))
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        upload_done_during_questions = upload.done()
        upload.result(timeout=REQUEST_TIMEOUT_S)
        latencies = sorted(latency for latency, _ in results)
        failures = [outcome for _, outcome in results if outcome]
        report = {
            "sessions": args.sessions,
            "requests": len(results),
            "expected_requests": args.sessions * args.questions,
            "wrong_or_failed": len(failures),
            "error_rate": len(failures) / max(1, len(results)),
            "p50_s": round(statistics.median(latencies), 2),
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
            "throughput_rps": round(len(results) / elapsed, 2),
            "upload_docs": args.upload_docs,
            "upload_still_indexing_when_questions_ended": not upload_done_during_questions,
            "app_peak_rss_mb": round(max(peak)),
            "threads": args.threads,
            "load": "/".join(f"{x:.2f}" for x in os.getloadavg()),
            "failures": failures[:10],
        }
        print(json.dumps(report, indent=2))
    finally:
        app.terminate()
        app.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
