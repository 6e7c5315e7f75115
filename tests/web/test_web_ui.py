"""The chat page driven in headless Chromium: answers, sources, refusals, uploads, hostile documents."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pypdfium2
from PIL import Image
from playwright.sync_api import Page, expect

from tests.web.conftest import ANSWER_MS, FIXTURES, PDF_QUOTE, REPO

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


def corpus_files(app) -> list[str]:
    return sorted(p.name for p in Path(app.corpus).iterdir() if not p.name.startswith("."))


def test_pdf_citation_opens_its_page_with_the_quote_highlighted_on_it(page, app, artifacts):
    ask(page, "How does the barn owl hunt voles?")
    card = page.locator(f"{SOURCES} .source").first
    expect(card.locator(".source-meta")).to_contain_text("owl-survey.pdf, page 2")
    card.locator("button.open-source").click()
    figure = page.locator("#document-view .pdf-view")
    expect(figure.locator("figcaption")).to_have_text("Page 2 of 2", timeout=ANSWER_MS)
    image, highlight = figure.locator("img"), figure.locator(".pdf-highlight").first
    expect(highlight).to_be_visible()
    page.screenshot(path=artifacts / "pdf-page.png", full_page=True)
    shown, box = image.bounding_box(), highlight.bounding_box()
    assert shown["x"] <= box["x"] and box["x"] + box["width"] <= shown["x"] + shown["width"] + 1
    assert shown["y"] <= box["y"] and box["y"] + box["height"] <= shown["y"] + shown["height"] + 1
    # Where the page's own character boxes put "The barn owl": the highlight starts there ...
    pdf = pypdfium2.PdfDocument(str(app.corpus / "owl-survey.pdf"))
    text_page = pdf[1].get_textpage()
    left, _, _, top = text_page.get_charbox(text_page.get_text_range().index(PDF_QUOTE[:12]))
    width, height = pdf[1].get_size()
    pdf.close()
    assert abs((box["x"] - shown["x"]) / shown["width"] - left / width) < 0.01
    assert abs((box["y"] - shown["y"]) / shown["height"] - (height - top) / height) < 0.02
    # ... and covers ink: the quoted words, drawn on the page image.
    pixels = Image.open(io.BytesIO(highlight.screenshot())).convert("L")
    assert pixels.getextrema()[0] < 110


def test_remove_asks_first_moves_to_trash_and_undo_restores(page, app, artifacts):
    open_tab(page, "Documents")
    choice = page.locator("#remove-choice input")
    choice.fill("lighthouse-log.md")
    choice.press("Enter")
    page.locator("#remove").click()
    expect(page.locator("#confirm-text")).to_contain_text("Move lighthouse-log.md to the trash")
    page.screenshot(path=artifacts / "remove-confirm.png", full_page=True)
    assert (app.corpus / "lighthouse-log.md").is_file()  # asking changed nothing
    page.locator("#confirm-remove-no").click()
    expect(page.locator("#confirm-remove-yes")).to_be_hidden()
    page.locator("#remove").click()
    page.locator("#confirm-remove-yes").click()
    expect(page.locator("#action-report")).to_have_text("Moved lighthouse-log.md to the trash and out of the index.",
                                                        timeout=ANSWER_MS)
    expect(page.locator("#documents")).not_to_contain_text("lighthouse-log.md")
    assert not (app.corpus / "lighthouse-log.md").exists()
    assert [p.name for p in (app.corpus / ".rag-trash").rglob("*.md")] == ["lighthouse-log.md"]
    page.screenshot(path=artifacts / "removed.png", full_page=True)
    page.locator("#undo").click()
    expect(page.locator("#action-report")).to_have_text("Restored lighthouse-log.md to the corpus and the index.",
                                                        timeout=ANSWER_MS)
    expect(page.locator("#documents")).to_contain_text("lighthouse-log.md")
    expect(page.locator("#undo")).to_be_hidden()
    assert (app.corpus / "lighthouse-log.md").is_file()
    open_tab(page, "Chat")
    expect(ask(page, "When does the lighthouse keeper write the log?").locator("q")).to_contain_text(
        "every evening at nine")


def test_a_reload_keeps_the_conversation_and_the_export_has_every_quote(page, artifacts):
    ask(page, SEED_QUESTION)
    ask(page, "How does the barn owl hunt voles?")
    quotes = page.locator("#chatbot q").all_inner_texts()
    assert len(quotes) >= 2
    page.reload()
    expect(page.locator(BOT)).to_have_count(2, timeout=ANSWER_MS)
    expect(page.locator("#chatbot q")).to_have_text(quotes)
    expect(page.locator(f"{SOURCES} mark").first).to_contain_text(PDF_QUOTE[:30])
    with page.expect_download() as download:
        page.locator("#export").click()
    exported = Path(download.value.path()).read_text()
    assert download.value.suggested_filename == "conversation.md"
    for quote in quotes:
        assert quote in exported
    assert "`owl-survey.pdf`, page 2, characters" in exported and f"## {SEED_QUESTION}" in exported
    page.locator("#clear").click()
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator("#export")).to_be_hidden()
    page.reload()
    expect(page.locator("#index-banner")).to_contain_text("chunks", timeout=ANSWER_MS)
    expect(page.locator(SOURCES)).to_contain_text("Sources of the latest answer appear here.")
    expect(page.locator(BOT)).to_have_count(0)


def test_two_quotes_from_one_passage_give_one_card_with_two_highlights(model_page, slow_model, artifacts):
    first, second = SEED_QUOTE, "Colombia's current president, Gustavo Petro"
    reply, delay = slow_model.reply, slow_model.token_delay
    slow_model.reply, slow_model.token_delay = f'"{first}" [1]. Later, "{second}" [1] changed course.', 0.0
    try:
        answer = ask(model_page, "When did Colombia sever diplomatic ties with Israel?")
    finally:
        slow_model.reply, slow_model.token_delay = reply, delay
    expect(answer.locator("q")).to_have_count(2)
    cards = model_page.locator(f"{SOURCES} .source")
    expect(cards).to_have_count(1)
    expect(cards.locator("mark")).to_have_count(2)
    expect(cards.locator("mark").nth(0)).to_have_text("1" + first)
    expect(cards.locator("mark").nth(1)).to_have_text("2" + second)
    expect(cards.locator(".source-number")).to_have_text("[1] [2]")
    model_page.screenshot(path=artifacts / "two-quotes-one-card.png", full_page=True)


def test_a_hundred_thousand_documents_page_load_stays_small(browser, big_library_app, open_page, artifacts):
    sent: list[tuple[str, int]] = []
    with open_page(big_library_app) as tab:
        tab.on("requestfinished", lambda r: sent.append((r.url, r.sizes()["responseBodySize"])))
        tab.reload()
        expect(tab.locator("#index-banner")).to_contain_text("chunks", timeout=ANSWER_MS)
        open_tab(tab, "Documents")
        expect(tab.locator("#page-label")).to_have_text("1–25 of 100,000")
        expect(tab.locator("#documents tbody tr")).to_have_count(25)
        data = sum(size for url, size in sent if "/assets/" not in url and "/static/" not in url)
        assert data <= 200_000, f"a page load sent {data:,} bytes of data: {sorted(sent, key=lambda s: -s[1])[:5]}"
        tab.locator("#next-page").click()
        expect(tab.locator("#page-label")).to_have_text("26–50 of 100,000")
        tab.locator("#doc-search input, #doc-search textarea").first.fill("article-099999")
        tab.locator("#doc-search input, #doc-search textarea").first.press("Enter")
        expect(tab.locator("#page-label")).to_have_text("1–1 of 1 matching of 100,000")
        expect(tab.locator("#documents tbody tr")).to_have_count(1)
        tab.screenshot(path=artifacts / "documents-100k.png", full_page=True)


def test_screenshots_at_desktop_and_mobile_widths_light_and_dark(page, app, open_page, artifacts):
    ask(page, SEED_QUESTION)  # kept in the browser: the other pages show it too
    page.screenshot(path=artifacts / "desktop-light.png", full_page=True)
    if os.environ.get("RAG_UPDATE_SCREENSHOT"):  # the README's picture
        shutil.copy(artifacts / "desktop-light.png", REPO / "docs" / "screenshot.png")
    for name, size, query in [("desktop-dark", (1400, 900), "?__theme=dark"),
                              ("mobile-light", (390, 844), ""), ("mobile-dark", (390, 844), "?__theme=dark")]:
        with open_page(app, *size, query) as tab:
            ask(tab, "How does the barn owl hunt voles?")
            tab.locator(f"{SOURCES} button.open-source").first.click()
            expect(tab.locator("#document-view .pdf-highlight").first).to_be_visible(timeout=ANSWER_MS)
            tab.screenshot(path=artifacts / f"{name}.png", full_page=True)


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
    expect(source.locator(".source-meta")).to_contain_text("match")  # relevance in words
    expect(source.locator(".relevance")).to_have_attribute("title", re.compile(r"relevance score \d\.\d{3}"))
    expect(source.locator("mark")).to_contain_text(SEED_QUOTE)
    expect(source.locator(".source-passage")).to_contain_text("For decades, Colombia's economy")  # around it
    page.screenshot(path=artifacts / "chat.png", full_page=True)
    marker.click()
    expect(source).to_have_class("source flash")
    source.locator("button.open-source").click()
    view = page.locator("#document-view .document")
    expect(view.locator("mark.focus")).to_contain_text(SEED_QUOTE, timeout=ANSWER_MS)
    expect(view.locator("mark.focus")).to_be_in_viewport()
    expect(view.locator(".document-text")).to_contain_text("the number one ally of Israel")  # the whole text
    page.screenshot(path=artifacts / "document-view.png", full_page=True)


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
    expect(page.locator("#index-status")).to_contain_text("documents")
    before = int(re.search(r"(\d+) documents", page.locator("#index-status").inner_text()).group(1))
    page.locator(FILE_INPUT).set_input_files(FIXTURES / "tarnvik-volcano.txt")
    expect(page.locator("#action-report")).to_contain_text("Added tarnvik-volcano.txt", timeout=ANSWER_MS)
    expect(page.locator("#documents")).to_contain_text("tarnvik-volcano.txt")
    expect(page.locator("#index-status")).to_contain_text(f"{before + 1} documents")
    page.screenshot(path=artifacts / "upload.png", full_page=True)
    assert (app.corpus / "tarnvik-volcano.txt").is_file()
    open_tab(page, "Chat")
    answer = ask(page, "What colours the crater lake of Mount Tarnvik?")
    expect(answer.locator("q")).to_contain_text("coloured emerald green by dissolved copper salts")
    expect(page.locator(f"{SOURCES} .source-meta").first).to_contain_text("tarnvik-volcano.txt")


def test_broken_pdf_is_reported_and_old_answers_still_work(page, app, artifacts):
    corpus_before = corpus_files(app)
    open_tab(page, "Documents")
    listed_files = page.locator("#documents td code")
    expect(listed_files).to_have_count(len(corpus_before))
    files_before = listed_files.all_inner_texts()
    page.locator(FILE_INPUT).set_input_files(FIXTURES / "broken.pdf")
    expect(page.locator("#action-report .report-problem")).to_have_text(
        "broken.pdf was not added: malformed PDF: startxref not found", timeout=ANSWER_MS)
    page.screenshot(path=artifacts / "broken-upload.png", full_page=True)
    expect(listed_files).to_have_text(files_before)
    assert corpus_files(app) == corpus_before
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
