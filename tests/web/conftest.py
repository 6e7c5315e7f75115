"""The real app (``python app.py``) on a free local port over a temporary corpus, and a headless browser.

Browser tests need Debian's Chromium (``apt-get install chromium``); Playwright's own browser
download is not used. Screenshots go to $UI_ARTIFACTS (default: the test's tmp folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_SECONDS = 180  # two busy cores: imports, model load, then the first build on first visit
ANSWER_MS = 60_000
API_SECONDS = 120  # the longest a gradio_client call may take before the test fails
PDF_QUOTE = "The barn owl hunts voles at night by sound alone, even in complete darkness."


@dataclass(frozen=True)
class RunningApp:
    url: str
    corpus: Path
    index: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"app.py did not serve {url} within {STARTUP_SECONDS} s:\n{log.read_text()}")


def write_survey_pdf(path: Path) -> None:
    """A two-page PDF whose second page holds ``PDF_QUOTE``."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Owl survey 2024\n\nThe survey counted birds in the northern woods over three winters.")
    pdf.add_page()
    pdf.multi_cell(0, 8, f"Night hunting. {PDF_QUOTE} Its facial disc funnels faint rustling to its ears. "
                         "Tawny owls prefer mice and nest in old oak hollows.")
    pdf.output(str(path))


def _running_app(root: Path, script: Path = REPO / "app.py", **env: str):
    """``python app.py`` on a copy of the default corpus plus a tricky document and a PDF, started cold."""
    corpus, index, log = root / "corpus", root / "index", root / "app.log"
    shutil.copytree(REPO / "corpus", corpus)
    shutil.copy(FIXTURES / "lighthouse-log.md", corpus)
    write_survey_pdf(corpus / "owl-survey.pdf")
    port = _free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAG_")}, "GRADIO_TEMP_DIR": str(root / "uploads"), "RAG_LLM_BASE_URL": "", "RAG_AUTH": "",
           **env}
    with open(log, "w") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(script), "--corpus", str(corpus), "--index", str(index),
             "--port", str(port)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=root,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, process, log)
        yield RunningApp(url, corpus, index, log)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="session")
def app(tmp_path_factory) -> RunningApp:
    yield from _running_app(tmp_path_factory.mktemp("web-app"))


@pytest.fixture(scope="session")
def big_library_app(tmp_path_factory) -> RunningApp:
    """The app listing 100,000 (fake) documents, to measure what a page load sends."""
    yield from _running_app(tmp_path_factory.mktemp("web-app-100k"), FIXTURES / "hundred_thousand_documents_app.py")


@pytest.fixture(scope="session")
def slow_model():
    """A local OpenAI-compatible server streaming a verifiable answer slowly, token by token."""
    from tests.test_llm import ChatServer

    server = ChatServer()
    server.token_delay = 0.15
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def app_with_model(tmp_path_factory, slow_model) -> RunningApp:
    yield from _running_app(tmp_path_factory.mktemp("web-app-llm"), RAG_LLM_BASE_URL=slow_model.base_url,
                            RAG_LLM_MODEL="test-model")


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@contextmanager
def _open_page(browser, app: RunningApp, width: int = 1400, height: int = 900, query: str = ""):
    """The chat page, once its index is ready; fails the test on any request off 127.0.0.1 or any dialog."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    tab = context.new_page()
    external, dialogs = [], []
    tab.on("request", lambda r: external.append(r.url)
           if r.url.startswith(("http:", "https:", "ws:", "wss:")) and "//127.0.0.1:" not in r.url else None)
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.goto(app.url + query)
    expect(tab.locator("#index-banner")).to_contain_text("chunks", timeout=STARTUP_SECONDS * 1000)
    yield tab
    context.close()
    assert not external, f"the page tried to reach beyond this machine: {external}"
    assert not dialogs, f"a script ran and opened a dialog: {dialogs}"


@pytest.fixture
def page(browser, app):
    with _open_page(browser, app) as tab:
        yield tab


@pytest.fixture
def open_page(browser):
    """Open the chat page of an app at a given size and theme: ``with open_page(app, 390, 844, "?__theme=dark")``."""
    return lambda app, *args: _open_page(browser, app, *args)


@pytest.fixture
def model_page(browser, app_with_model):
    """The chat page of an app configured with a (slow) language model."""
    with _open_page(browser, app_with_model) as tab:
        yield tab


@pytest.fixture
def artifacts(tmp_path) -> Path:
    folder = Path(os.environ.get("UI_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
