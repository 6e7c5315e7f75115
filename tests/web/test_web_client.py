"""The same running app through gradio_client: chat with structured citations, upload, remove, restore,
rebuild. Every call has a deadline (API_SECONDS), so a dead server fails the test instead of hanging it."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client, handle_file

from rag.web_render import message_text
from tests.web.conftest import API_SECONDS

SEED_QUESTION = "When did Colombia sever diplomatic ties with Israel?"
HARMONICA = (
    "The glass harmonica\n"
    "Benjamin Franklin invented the glass harmonica in 1761 after hearing musical wine glasses in London.\n"
    "Its bowls of glass are turned by a foot treadle while wet fingers touch their rims.\n"
)
HARMONICA_QUESTION = "Who invented the glass harmonica?"


@pytest.fixture(scope="module")
def client(app):
    return Client(app.url, verbose=False)


def call(client, *args, api_name: str):
    """``client.predict`` with a deadline."""
    return client.submit(*args, api_name=api_name).result(timeout=API_SECONDS)


def ask(client, question, history=()):
    """(history, answer dict) after one turn of /chat."""
    # The first output is the question box: emptied by the first update, left alone by the last.
    _, history, sources, answer = call(client, question, list(history), api_name="/chat")
    return history, answer


def test_only_the_documented_endpoints_are_public(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {"/chat", "/upload", "/remove", "/restore", "/rebuild"}
    parameters = {name: [p["parameter_name"] for p in e["parameters"]] for name, e in api["named_endpoints"].items()}
    assert parameters["/remove"] == parameters["/restore"] == ["doc_id"] and parameters["/upload"] == ["files"]


def test_chat_returns_the_answer_and_structured_citations(client, app):
    history, answer = ask(client, SEED_QUESTION)
    assert answer["found"] is True and answer["note"] is None
    [citation] = answer["citations"]
    assert citation["number"] == 1 and citation["doc_id"] == "colombia-israel-ties.txt"
    assert citation["title"] and isinstance(citation["score"], float) and citation["page"] is None
    text = (app.corpus / citation["doc_id"]).read_text()
    assert text[citation["start"]:citation["end"]] == citation["quote"]
    assert "Colombia severed diplomatic ties with Israel" in citation["quote"]
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert message_text(history[1]["content"]) == message_text(answer["text"]).replace("*", "")


def test_chat_streams_and_follow_ups_use_the_conversation(client):
    job = client.submit("Who is Yair Klein?", [], api_name="/chat")
    job.result(timeout=API_SECONDS)
    updates = job.outputs()
    assert len(updates) >= 2
    history, first, last = updates[-1][1], updates[0], updates[-1]
    assert first[3] is None and last[3]["found"]  # citations arrive with the finished answer
    history, answer = ask(client, "And Spearhead?", history)  # says nothing of whose Spearhead
    assert [m["role"] for m in history] == ["user", "assistant"] * 2
    assert answer["found"] and "Spearhead" in answer["citations"][0]["quote"]


def test_unanswerable_question_has_no_citations(client):
    _, answer = ask(client, "What is the boiling point of mercury?")
    assert answer["found"] is False and answer["citations"] == []


def test_upload_indexes_a_file_and_remove_takes_it_out(client, app, tmp_path):
    document = tmp_path / "glass-harmonica.txt"
    document.write_text(HARMONICA)
    report = call(client, [handle_file(str(document))], api_name="/upload")[1]
    assert "Added glass-harmonica.txt" in message_text(report)
    _, answer = ask(client, HARMONICA_QUESTION)
    assert answer["found"] and answer["citations"][0]["doc_id"] == "glass-harmonica.txt"
    assert "Benjamin Franklin invented the glass harmonica" in answer["citations"][0]["quote"]

    fresh = Client(app.url, verbose=False)  # a new session knows no choices: the name is enough
    report = call(fresh, "glass-harmonica.txt", api_name="/remove")[0]
    assert message_text(report) == "Moved glass-harmonica.txt to the trash and out of the index."
    assert not (app.corpus / "glass-harmonica.txt").exists()
    assert [p.read_text() for p in (app.corpus / ".rag-trash").rglob("glass-harmonica.txt")] == [HARMONICA]
    _, answer = ask(client, HARMONICA_QUESTION)
    assert all(c["doc_id"] != "glass-harmonica.txt" for c in answer["citations"])

    report = call(Client(app.url, verbose=False), "glass-harmonica.txt", api_name="/restore")[0]
    assert message_text(report) == "Restored glass-harmonica.txt to the corpus and the index."
    _, answer = ask(client, HARMONICA_QUESTION)
    assert answer["found"] and answer["citations"][0]["doc_id"] == "glass-harmonica.txt"


def test_too_many_files_in_one_upload_are_refused_whole(client, app, tmp_path):
    files = []
    for i in range(21):
        files.append(tmp_path / f"note-{i}.txt")
        files[-1].write_text(f"Note {i}\nA short note.\n")
    report = call(client, [handle_file(str(f)) for f in files], api_name="/upload")[1]
    assert message_text(report) == "Nothing was added: 21 files in one upload; at most 20 at a time."
    assert not (app.corpus / "note-0.txt").exists()


def test_questions_during_a_rebuild_are_answered_from_the_last_index(client):
    rebuild = client.submit(api_name="/rebuild")
    deadline = time.monotonic() + API_SECONDS
    answers = []
    while not rebuild.done() or not answers:
        assert time.monotonic() < deadline, "the rebuild did not finish in time"
        answers.append(ask(client, SEED_QUESTION)[1])
    assert "Rebuilt" in message_text(rebuild.result(timeout=API_SECONDS)[0])
    assert all(a["found"] and a["citations"][0]["doc_id"] == "colombia-israel-ties.txt" for a in answers)
