"""The `rag` command as a user runs it, in a real subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import DEFAULT_CORPUS


def rag(*args: str, cwd=None, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=300, input=stdin,
    )


def test_help_and_the_file_parsing_child_load_no_heavy_library():
    heavy = ("torch", "faiss", "bm25s", "scipy", "numpy", "sentence_transformers", "transformers")
    probe = ("import sys; import rag, rag.cli, rag.guard, rag.loaders; rag.cli._parser(); "
             f"print(sorted(m for m in {heavy!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    shown = rag("--help")
    assert shown.returncode == 0 and "chat" in shown.stdout and "index" in shown.stdout
    assert "--answers" in shown.stdout  # eval scores answers too, not only BEIR retrieval


def test_the_public_api_still_imports_from_the_package():
    import rag as package

    assert callable(package.answer) and callable(package.build_index) and callable(package.retrieve)
    with pytest.raises(AttributeError):
        package.no_such_function  # noqa: B018


def test_threads_flag_takes_a_count_or_auto(tmp_path):
    wrong = rag("search", "anything", "--threads", "many", "--index", str(tmp_path))
    assert wrong.returncode == 2 and "expected a number or auto" in wrong.stderr


@pytest.mark.parametrize("command", ["search", "ask", "chat"])
def test_k_below_one_is_refused_before_anything_loads(tmp_path, command):
    question = [] if command == "chat" else ["anything"]
    wrong = rag(command, *question, "-k", "0", "--index", str(tmp_path), stdin="anything\n")
    assert wrong.returncode == 2 and "argument -k: expected at least 1, got 0" in wrong.stderr


@pytest.mark.timeout(400)
def test_chat_keeps_the_conversation_until_quit(default_index):
    said = rag("chat", "--index", str(default_index), stdin="\n".join([
        "Who is Yair Klein?",
        "When did he arrive in Colombia?",
        "/sources",
        "/frobnicate",
        "/new",
        "/sources",
        "/quit",
        "Never read: the chat ended above.",
    ]) + "\n")
    assert said.returncode == 0, said.stderr
    out = said.stdout
    assert out.startswith("rag chat over 1 document in ")
    follow_up, sources = out.split("Klein arrived in Colombia", 1)[0], out.split("\nSources:\n", 1)
    assert "Sources: [1]" in follow_up  # each answer lists its sources in one line
    assert len(sources) == 2 and "(colombia-israel-ties.txt)" in sources[1]
    assert "Klein arrived in Colombia" in sources[1]  # the follow-up was answered about Klein
    assert "unknown command /frobnicate" in out
    assert "(new conversation)" in out and "(no sources: the last answer quoted nothing)" in out
    assert "Never read" not in out


def test_ask_lists_possibly_related_passages_on_a_refusal_as_not_an_answer(default_index):
    on_topic = rag("ask", "How much coal did Colombia sell to Israel in 2023?", "--index", str(default_index))
    assert on_topic.returncode == 0, on_topic.stderr
    assert on_topic.stdout.startswith("The corpus does not contain the answer to this question.")
    assert "Sources:" not in on_topic.stdout
    listed = on_topic.stdout.split("\nPossibly related passages (not an answer):\n", 1)
    assert len(listed) == 2 and listed[1].startswith("[1] ") and "(colombia-israel-ties.txt)" in listed[1]
    off_topic = rag("ask", "What is the tallest mountain in Europe?", "--index", str(default_index))
    assert off_topic.returncode == 0 and "Possibly related" not in off_topic.stdout


def test_llm_gguf_must_name_an_existing_model_file(tmp_path, default_index):
    said = rag("ask", "Who is Yair Klein?", "--index", str(default_index),
               "--llm-gguf", str(tmp_path / "absent.gguf"))
    assert said.returncode == 2 and "absent.gguf does not exist" in said.stderr


@pytest.mark.timeout(300)
def test_ask_with_a_gguf_starts_the_local_model_and_answers(smollm2_gguf, default_index):
    said = rag("ask", "When did Colombia sign major trade agreements with Israel?", "--index",
               str(default_index), "--llm-gguf", str(smollm2_gguf), "--json")
    assert said.returncode == 0, said.stderr
    result = json.loads(said.stdout)
    assert result["found"] and result["citations"]


def test_chat_without_an_index_says_how_to_build_one(tmp_path):
    said = rag("chat", "--index", str(tmp_path / "none"), stdin="Anything?\n")
    assert said.returncode == 2 and said.stderr.startswith("rag: error: no index")


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


def test_a_reader_that_leaves_early_gets_no_traceback(default_index):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    searching = subprocess.Popen([sys.executable, "-m", "rag", "search", "Who is Yair Klein?", "--index",
                                  str(default_index)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    searching.stdout.close()  # like `rag search ... | head -1` once head has its line
    _, errors = searching.communicate(timeout=300)
    assert searching.returncode == 141 and b"Traceback" not in errors and b"BrokenPipe" not in errors


def test_a_watch_lists_each_skipped_file_once_then_counts_it(capsys):
    from rag.cli import _print_stats
    from rag.config import Settings
    from rag.types import IndexStats

    reported: set = set()
    empty, binary = ("empty.pdf", "empty file"), ("blob.txt", "not text: binary data")
    _print_stats(Settings(), IndexStats(added=1, skipped=[empty]), reported)
    _print_stats(Settings(), IndexStats(unchanged=1, skipped=[binary, empty]), reported)
    first, second = capsys.readouterr().out.split("indexed corpus into index: 0 added")
    assert "skipped empty.pdf: empty file" in first
    assert "skipped blob.txt: not text: binary data" in second and "empty.pdf" not in second
    assert "(1 skipped as before)" in second
    _print_stats(Settings(), IndexStats(skipped=[empty]))  # one build: everything listed
    assert "skipped empty.pdf: empty file" in capsys.readouterr().out


def test_an_unreachable_language_model_is_said_once_in_the_answer_not_also_on_stderr(default_index):
    with socket.socket() as closed:  # a port nothing listens on once this closes
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAG_LLM_BASE_URL=f"http://127.0.0.1:{port}/v1")
    said = subprocess.run([sys.executable, "-m", "rag", "ask", "Who is Yair Klein?", "--index",
                           str(default_index)], capture_output=True, text=True, env=env, timeout=300)
    assert said.returncode == 0 and "could not answer (cannot reach" in said.stdout
    assert said.stderr == ""
