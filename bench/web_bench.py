"""How long the web chat takes to be useful, as a reader in a browser sees it.

Starts ``python app.py`` on a copy of the default corpus twice — cold (no index: the first page
load builds it) and warm (the index from the cold run) — and times, from the moment the process
is spawned: the server answering HTTP, the page showing a ready index, and the first answer on the
page. Then asks the seed questions in the browser and times each from Enter to the finished answer
(sources panel filled). Needs Debian's Chromium at /usr/bin/chromium.

    python bench/web_bench.py [--rounds 3]
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
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [json.loads(line)["question"] for line in (ROOT.parent / "shared" / "eval" / "seed_questions.jsonl").open()]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 300_000


def load_average() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen) -> None:
    while process.poll() is None:
        try:
            with urllib.request.urlopen(url + "config", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"app.py exited with {process.returncode}")


def ask(page, question: str) -> tuple[float, float]:
    """Seconds from Enter to the first text of the answer, and to the finished answer."""
    answers = page.locator("#chatbot [data-testid='bot']")
    before = answers.count()
    box = page.locator("#question textarea")
    box.fill(question)
    expect(box).to_have_value(question)
    start = time.perf_counter()
    box.press("Enter")
    expect(answers).to_have_count(before + 1, timeout=TIMEOUT_MS)
    expect(answers.last).not_to_have_text("…", timeout=TIMEOUT_MS)
    first_text = time.perf_counter() - start
    expect(page.locator("#sources")).not_to_contain_text("Searching the corpus", timeout=TIMEOUT_MS)
    return first_text, time.perf_counter() - start


def start_to_answer(browser, work: Path, threads: int) -> dict[str, float]:
    """Spawn app.py and time it until the page has answered one question."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(work / "uploads"), "RAG_THREADS": str(threads)}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py"), "--corpus", str(work / "corpus"), "--index", str(work / "index"),
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )
    try:
        wait_for_http(url, process)
        serving = time.perf_counter() - start
        page = browser.new_page()
        page.goto(url)
        expect(page.locator("#index-banner")).to_contain_text("chunks", timeout=TIMEOUT_MS)
        ready = time.perf_counter() - start
        ask(page, QUESTIONS[0])
        answered = time.perf_counter() - start
        latencies = [ask(page, q) for q in QUESTIONS[1:]]
        page.close()
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "serving": serving, "ready": ready, "answered": answered,
        "first_text": [f for f, _ in latencies], "finished": [t for _, t in latencies],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="cold+warm starts to time (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the app (RAG_THREADS)")
    args = parser.parse_args()

    print(f"cores {os.cpu_count()}, torch threads {args.threads}, load average before {load_average()}")
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for round_number in range(args.rounds):
            work = Path(tmp) / f"round-{round_number}"
            shutil.copytree(ROOT / "corpus", work / "corpus")
            for kind in ("cold", "warm"):  # warm reuses the index the cold start built
                runs[kind].append(start_to_answer(browser, work, args.threads))
                print(f"round {round_number + 1} {kind}: " + ", ".join(
                    f"{key} {value:.1f} s" for key, value in runs[kind][-1].items() if isinstance(value, float)))
        browser.close()

    print(f"\nmedian of {args.rounds} rounds, seconds from spawning `python app.py`:")
    print("| start | server answers HTTP | page shows the index | first answer on the page |")
    print("|---|---|---|---|")
    for kind, label in (("cold", "cold (no index)"), ("warm", "existing index")):
        medians = [statistics.median(run[key] for run in runs[kind]) for key in ("serving", "ready", "answered")]
        print(f"| {label} | " + " | ".join(f"{m:.1f}" for m in medians) + " |")
    for key, label in (("first_text", "first text shown"), ("finished", "answer with sources")):
        values = sorted(v for kind in runs.values() for run in kind for v in run[key])
        print(f"browser-side latency, {label}: median {statistics.median(values) * 1000:.0f} ms, "
              f"p90 {values[int(0.9 * (len(values) - 1))] * 1000:.0f} ms over {len(values)} questions")
    print(f"load average after {load_average()}")


if __name__ == "__main__":
    main()
