"""The chat page driven in headless Chromium: answers, sources, refusals, uploads, hostile documents."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.web.conftest import ANSWER_MS, FIXTURES, REPO
from playwright.sync_api import Page, expect

QUESTION = "#question textarea"
BOT = "#chatbot [data-testid='bot']"
SOURCES = "#sources"
FILE_INPUT = "#upload input[type='file']"
SEED_QUESTION = "When did Colombia sever diplomatic ties with Israel?"
SEED_QUOTE = "Colombia severed diplomatic ties with Israel"


def ask(page: Page, question: str):
    """Ask and wait for the whole answer; returns the latest bot message."""
    asked = page.locator(BOT).count()
    page.locator(QUESTION).fill(question)
    page.locator(QUESTION).press("Enter")
    return wait_for_answer(page, asked)


def wait_for_answer(page: Page, answers_before: int):
    expect(page.locator(BOT)).to_have_count(answers_before + 1, timeout=ANSWER_MS)
    expect(page.locator(SOURCES)).not_to_contain_text("Searching the corpus", timeout=ANSWER_MS)
    return page.locator(BOT).last


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_seed_question_shows_the_quote_and_its_highlighted_source(page, artifacts):
    answer = ask(page, SEED_QUESTION)
    expect(answer.locator("q")).to_contain_text(SEED_QUOTE)
    marker = answer.locator("a.cite").first
    expect(marker).to_have_text("[1]")
    expect(marker).to_have_attribute("title", "colombia-israel-ties (colombia-israel-ties.txt): “In May this year, "
                                              "Colombia severed diplomatic ties with Israel, almost 67 years after "
                                              "first establishing relations with the Zionist entity.”")
    source = page.locator(f"{SOURCES} .source").first
    expect(source.locator(".source-number")).to_have_text("[1]")
    expect(source.locator(".source-meta")).to_contain_text("colombia-israel-ties.txt")
    expect(source.locator(".source-meta")).to_contain_text("score")
    expect(source.locator("mark")).to_contain_text(SEED_QUOTE)
    expect(source.locator(".source-passage")).to_contain_text("For decades, Colombia's economy")  # around it
    page.screenshot(path=artifacts / "chat.png", full_page=True)
    if os.environ.get("RAG_UPDATE_SCREENSHOT"):  # the README's picture
        shutil.copy(artifacts / "chat.png", REPO / "docs" / "screenshot.png")
    marker.click()
    expect(source).to_have_class("source flash")


def test_unanswerable_question_is_refused_with_no_sources(page, artifacts):
    answer = ask(page, "What is the boiling point of mercury?")
    expect(answer).to_contain_text("The corpus does not contain the answer to this question.")
    expect(answer.locator("q")).to_have_count(0)
    expect(page.locator(SOURCES)).to_contain_text("No sources")
    expect(page.locator(f"{SOURCES} .source")).to_have_count(0)
    page.screenshot(path=artifacts / "refusal.png", full_page=True)


def test_example_then_follow_up_then_clear(page):
    page.locator("#chatbot").get_by_text("What did Israeli exports to Colombia consist of?").click()
    expect(wait_for_answer(page, 0).locator("q").first).to_contain_text("Israeli exports to Colombia")
    follow_up = ask(page, "And what did Colombia's president say in 2020?")
    expect(follow_up.locator("q").first).to_be_visible()
    expect(page.locator("#chatbot [data-testid='user']")).to_have_count(2)
    page.locator("#clear").click()
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator(SOURCES)).to_contain_text("Sources of the latest answer appear here.")


def test_document_with_script_and_markdown_tricks_shows_as_text(page, artifacts):
    # The page fixture fails the test if any alert() ran or the ![image](http://example.com/…) loaded.
    answer = ask(page, "When does the lighthouse keeper write the log?")
    expect(answer.locator("q")).to_have_text(
        'The harbour lighthouse keeper writes the log <script>alert("lighthouse")</script> '
        "every evening at nine o'clock.")
    expect(page.locator(f"{SOURCES} mark")).to_contain_text('<script>alert("lighthouse")</script>')
    expect(page.locator(f"{SOURCES} .source-passage")).to_contain_text("![beacon](http://example.com/beacon.png)")
    answer = ask(page, "When was the lamp rebuilt?")
    expect(answer.locator("q")).to_contain_text("![beacon](http://example.com/beacon.png)")
    expect(answer).to_contain_text("According to Harbour <b>lighthouse</b> notes")  # its title
    expect(page.locator(f"{SOURCES} .source-title")).to_have_text("Harbour <b>lighthouse</b> notes")
    for place in ("#chatbot", SOURCES):
        expect(page.locator(f"{place} script, {place} img, {place} b, {place} a:not(.cite)")).to_have_count(0)
    page.screenshot(path=artifacts / "hostile-document.png", full_page=True)
    open_tab(page, "Documents")
    expect(page.locator("#documents")).to_contain_text("Harbour <b>lighthouse</b> notes")
    expect(page.locator("#documents b")).to_have_count(0)


def test_uploaded_document_is_indexed_and_quoted(page, app, artifacts):
    open_tab(page, "Documents")
    page.locator(FILE_INPUT).set_input_files(FIXTURES / "tarnvik-volcano.txt")
    expect(page.locator("#upload-report")).to_contain_text("Added tarnvik-volcano.txt", timeout=ANSWER_MS)
    expect(page.locator("#documents")).to_contain_text("tarnvik-volcano.txt")
    expect(page.locator("#index-status")).to_contain_text("3 documents")
    page.screenshot(path=artifacts / "upload.png", full_page=True)
    assert (app.corpus / "tarnvik-volcano.txt").is_file()
    open_tab(page, "Chat")
    answer = ask(page, "What colours the crater lake of Mount Tarnvik?")
    expect(answer.locator("q")).to_contain_text("coloured emerald green by dissolved copper salts")
    expect(page.locator(f"{SOURCES} .source-meta").first).to_contain_text("tarnvik-volcano.txt")


def test_broken_pdf_is_reported_and_old_answers_still_work(page, app, artifacts):
    corpus_before = sorted(p.name for p in Path(app.corpus).iterdir())
    open_tab(page, "Documents")
    listed_files = page.locator("#documents td code")
    expect(listed_files).to_have_count(len(corpus_before))
    files_before = listed_files.all_inner_texts()
    page.locator(FILE_INPUT).set_input_files(FIXTURES / "broken.pdf")
    expect(page.locator("#upload-report .report-problem")).to_have_text(
        "broken.pdf was not added: malformed PDF: startxref not found", timeout=ANSWER_MS)
    page.screenshot(path=artifacts / "broken-upload.png", full_page=True)
    expect(listed_files).to_have_text(files_before)
    assert sorted(p.name for p in Path(app.corpus).iterdir()) == corpus_before
    open_tab(page, "Chat")
    expect(ask(page, SEED_QUESTION).locator("q")).to_contain_text(SEED_QUOTE)


def test_a_question_typed_while_the_answer_streams_is_kept(model_page):
    """The box is emptied when a question is sent, never again by that answer's later updates."""
    asked = model_page.locator(BOT).count()
    box = model_page.locator(QUESTION)
    box.fill("When did Colombia sign major trade agreements with Israel?")
    box.press("Enter")
    expect(model_page.locator(SOURCES)).to_contain_text("Searching the corpus")
    expect(box).to_have_value("")
    box.fill("Who is Yair Klein?")  # the next question, typed while the model still streams
    answer = wait_for_answer(model_page, asked)
    expect(answer.locator("q")).to_contain_text("signed major trade agreements")
    expect(box).to_have_value("Who is Yair Klein?")
