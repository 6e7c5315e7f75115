"""The web app's wiring that needs no server: safe defaults, login, engines, conversation."""

from __future__ import annotations

import os

import pytest

from rag.cli import _parser
from rag.config import Settings
from rag.web import (
    EXTRACTIVE,
    conversation,
    engine_settings,
    example_questions,
    launch_options,
    parse_auth,
)
from rag.web_render import render_answer, render_user_message


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
