"""What a page load of the web chat sends, and how soon the Documents tab shows its first page,
as the number of indexed documents grows (1k, 10k, 100k; the listing is made up, the rest of the
app is real: tests/web/fixtures/hundred_thousand_documents_app.py).

Counts the bytes of every response except the page's static JavaScript, CSS and fonts (the same
at any size): /config, the load event's data, the listing. Needs Debian's Chromium.

    python bench/listing_bench.py [--sizes 1000 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "tests" / "web" / "fixtures" / "hundred_thousand_documents_app.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(browser, count: int, workdir: Path) -> dict:
    corpus = workdir / "corpus"
    shutil.copytree(ROOT / "corpus", corpus)
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAG_")},
           "FAKE_DOCUMENT_COUNT": str(count), "GRADIO_TEMP_DIR": str(workdir / "uploads")}
    process = subprocess.Popen([sys.executable, str(APP), "--corpus", str(corpus), "--index",
                                str(workdir / "index"), "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the app did not start ({count} documents)")
            try:
                urllib.request.urlopen(url + "config", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(url)  # the first visit builds the small real index: not measured
        expect(page.locator("#index-banner")).to_contain_text("chunks", timeout=300_000)
        sent: list[int] = []
        page.on("requestfinished", lambda r: sent.append(r.sizes()["responseBodySize"])
                if "/assets/" not in r.url and "/static/" not in r.url else None)
        started = time.perf_counter()
        page.reload()
        page.get_by_role("tab", name="Documents").click()
        expect(page.locator("#documents tbody tr")).to_have_count(25, timeout=120_000)
        seconds = time.perf_counter() - started
        searched = time.perf_counter()
        page.locator("#doc-search textarea, #doc-search input").first.fill("article-000999")
        page.locator("#doc-search textarea, #doc-search input").first.press("Enter")
        expect(page.locator("#documents tbody tr")).to_have_count(1, timeout=120_000)
        search_seconds = time.perf_counter() - searched
        context.close()
        return {"documents": count, "data_bytes": sum(sent), "first_page_s": seconds, "search_s": search_seconds}
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} (shared machine)")
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        for count in args.sizes:
            result = measure(browser, count, Path(tmp) / str(count))
            print(f"{result['documents']:>7,} documents: page load data {result['data_bytes'] / 1024:7.1f} KB, "
                  f"Documents tab first page {result['first_page_s']:.2f} s, search {result['search_s']:.2f} s "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
