"""The web app's wiring that needs no server: safe defaults, login, engines, conversation."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import asdict

import pytest

from rag.cli import _parser
from rag.config import Settings
from rag.types import Answer, Citation, Passage, RagError
from rag.web import (
    EXTRACTIVE,
    answer_from_dict,
    chat_history,
    check_can_serve,
    conversation,
    engine_settings,
    example_questions,
    launch_options,
    parse_auth,
    saved_turns,
)
from rag.web_render import render_answer, render_user_message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gradio_is_imported_offline_and_without_telemetry():
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


@pytest.mark.parametrize("argv", [["serve"], ["serve", "--corpus", "c", "--index", "i", "--port", "8000"]])
def test_serve_binds_loopback_unless_told_otherwise(argv):
    args = _parser().parse_args(argv)
    assert args.host == "127.0.0.1" and args.auth is None


def test_launch_is_local_private_and_limits_upload_size():
    options = launch_options(Settings(max_file_mb=2.0), "127.0.0.1", 7860, None)
    assert options["share"] is False and options["run_history"] is False and options["ssr_mode"] is False
    assert options["max_file_size"] == 2 * 1024 * 1024


@pytest.mark.parametrize("value, login", [(None, None), ("", None), ("ann:s3cret:x", ("ann", "s3cret:x"))])
def test_login_comes_as_user_and_password(value, login):
    assert parse_auth(value) == login


@pytest.mark.parametrize("value", ["ann", "ann:", ":pw"])
def test_incomplete_login_is_refused(value):
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        parse_auth(value)


def test_language_model_is_offered_only_when_configured():
    assert list(engine_settings(Settings())) == [EXTRACTIVE]
    engines = engine_settings(Settings(llm_base_url="http://127.0.0.1:8080/v1", llm_model="qwen"))
    assert list(engines) == [EXTRACTIVE, "Language model (qwen)"]
    assert engines[EXTRACTIVE].llm_base_url == ""


def test_examples_only_for_documents_in_the_corpus(tmp_path):
    assert example_questions(str(tmp_path)) == []
    (tmp_path / "colombia-israel-ties.txt").write_text("x")
    assert len(example_questions(str(tmp_path))) == 2


def test_conversation_gives_the_engine_plain_text_pairs():
    history = [
        {"role": "user", "content": render_user_message("Who <b>won</b>?")},
        {"role": "assistant", "content": [{"type": "text", "text": render_answer('"Ann won." [1]', [], 1)}]},
        {"role": "user", "content": "unanswered"},
    ]
    assert conversation(history) == [("Who <b>won</b>?", '"Ann won." [1]')]


def test_following_the_corpus_indexes_files_dropped_in_by_hand(tmp_path):
    import threading
    import time

    from rag import RagError, retrieve
    from rag.web import IndexKeeper, watch_corpus

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "owls.txt").write_text("Owls\nThe barn owl hunts voles at night by sound alone.")
    settings = Settings(corpus_dir=str(corpus), index_dir=str(tmp_path / "index"))
    stop = threading.Event()
    watcher = watch_corpus(IndexKeeper(settings), stop)
    assert watcher.daemon and watcher.is_alive()

    (corpus / "bats.txt").write_text("Bats\nMicrobats find moths by echolocation.")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if retrieve("echolocation moths", 1, index_dir=settings.index_dir, settings=settings)[0].doc_id == "bats.txt":
                break
        except (RagError, IndexError):  # no index yet, or the first build still running
            pass
        time.sleep(0.5)
    else:
        raise AssertionError("a file added to the corpus folder was never indexed")
    stop.set()
    watcher.join(timeout=30)
    assert not watcher.is_alive()


def test_start_is_refused_early_without_a_corpus_folder(tmp_path):
    settings = Settings(corpus_dir=str(tmp_path / "missing"), index_dir=str(tmp_path / "index"))
    with pytest.raises(RagError, match="corpus folder .*missing does not exist.*--corpus"):
        check_can_serve(settings, "127.0.0.1", 7860, None, False)


def test_a_non_local_address_needs_a_login_or_an_explicit_override(tmp_path):
    settings = Settings(corpus_dir=str(tmp_path))
    with pytest.raises(RagError, match="refusing to serve on 0.0.0.0 without a login.*RAG_AUTH.*--allow-no-login"):
        check_can_serve(settings, "0.0.0.0", free_port(), None, False)
    check_can_serve(settings, "0.0.0.0", free_port(), ("ann", "pw"), False)
    check_can_serve(settings, "0.0.0.0", free_port(), None, True)


def test_a_port_in_use_is_named_with_the_flag_to_change_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RagError, match=f"port {port} on 127.0.0.1 is already in use; choose another with --port"):
            check_can_serve(Settings(corpus_dir=str(tmp_path)), "127.0.0.1", port, None, False)


@pytest.mark.timeout(120)
def test_serving_a_non_local_address_without_login_exits_non_zero(tmp_path):
    """The real command: refused before Gradio starts, with rag's own message and no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    done = subprocess.run(
        [sys.executable, "-m", "rag", "serve", "--host", "0.0.0.0", "--port", str(free_port()),
         "--corpus", str(tmp_path), "--index", str(tmp_path / "index")],
        capture_output=True, text=True, timeout=100, env=env,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("rag: error: refusing to serve on 0.0.0.0 without a login")
    assert "Traceback" not in done.stderr


def test_launch_prints_no_gradio_hints_and_has_one_settings_link():
    options = launch_options(Settings(), "127.0.0.1", 7860, None)
    assert options["quiet"] is True and "settings" not in options["footer_links"]


def test_kept_answers_come_back_as_answers():
    answer = Answer('"Ann won." [1]', True, [Citation(1, "Ann won.", "a.txt", "A", 0, 8, 2, 0.9)],
                    related=[Passage("x", "b.txt", "B", 0.1, 0, 1)])
    saved = {"turns": [{"question": "Who won?", "answer": asdict(answer)}]}
    assert saved_turns(saved) == [("Who won?", answer_from_dict(asdict(answer)))]
    assert answer_from_dict(asdict(answer)) == answer
    assert saved_turns({"turns": [{"question": "q"}]}) == []  # unreadable: start afresh
    [user, bot] = chat_history(saved_turns(saved))
    assert user["role"] == "user" and "<q>Ann won&#46;</q>" in bot["content"]


class _FlakyStart:
    """Stands in for the Gradio app: its start-up localhost check fails ``failures`` times."""

    def __init__(self, failures: int):
        self.failures, self.launches, self.closed = failures, 0, 0

    def queue(self):
        return self

    def launch(self, **options):
        self.launches += 1
        if self.launches <= self.failures:
            raise ValueError("When localhost is not accessible, a shareable link must be created. Please set "
                             "share=True or check your proxy settings to allow access to localhost.")

    def close(self):
        self.closed += 1

    def block_thread(self):
        pass


@pytest.mark.parametrize("failures, starts", [(0, True), (2, True), (3, False)])
def test_a_failed_start_up_check_is_retried_then_explained(monkeypatch, tmp_path, capsys, failures, starts):
    from rag import web

    app = _FlakyStart(failures)
    monkeypatch.setattr(web, "build_app", lambda settings, follow_corpus: app)
    monkeypatch.setattr(web.time, "sleep", lambda seconds: None)
    settings = Settings(corpus_dir=str(tmp_path))
    if starts:
        assert web.serve(settings, port=free_port()) == 0
        assert app.launches == failures + 1
        err = capsys.readouterr().err
        assert "rag: the web chat is at http://127.0.0.1:" in err and "share=True" not in err
    else:
        with pytest.raises(RagError, match="did not answer on 127.0.0.1:.* after 3 tries"):
            web.serve(settings, port=free_port())
        assert app.launches == 3
