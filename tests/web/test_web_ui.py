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

from tests.web.conftest import ANSWER_MS, PDF_QUOTE, REPO

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

    def cite_both(body: dict) -> str:
        """A model that cites, by their numbers in the prompt, two neighbouring sentences."""
        prompt = body["messages"][-1]["content"]
        number = {quote: re.search(rf"^\[(\d+)\] [^\n]*{re.escape(quote)}", prompt, re.M).group(1)
                  for quote in (first, second)}
        return (f"Colombia severed diplomatic ties with Israel [{number[first]}]. "
                f"Gustavo Petro is Colombia's current president [{number[second]}].")

    reply, delay = slow_model.reply, slow_model.token_delay
    slow_model.reply, slow_model.token_delay = cite_both, 0.0
    try:
        answer = ask(model_page, "When did Colombia sever diplomatic ties with Israel?")
    finally:
        slow_model.reply, slow_model.token_delay = reply, delay
    expect(answer.locator("q")).to_have_count(2)
    cards = model_page.locator(f"{SOURCES} .source")
    expect(cards).to_have_count(1)
    expect(cards.locator("mark")).to_have_count(2)
    expect(cards.locator("mark").nth(0)).to_contain_text(first)
    expect(cards.locator("mark").nth(1)).to_contain_text(second)
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


def test_screenshots_at_desktop_and_mobile_widths_light_and_dark(app, open_page, artifacts):
    for name, size, query in [("desktop-light", (1400, 900), ""), ("desktop-dark", (1400, 900), "?__theme=dark"),
                              ("mobile-light", (390, 844), ""), ("mobile-dark", (390, 844), "?__theme=dark")]:
        with open_page(app, *size, query) as tab:
            ask(tab, SEED_QUESTION)
            ask(tab, "How does the barn owl hunt voles?")
            tab.locator(f"{SOURCES} button.open-source").first.click()
            expect(tab.locator("#document-view .pdf-highlight").first).to_be_visible(timeout=ANSWER_MS)
            tab.evaluate("window.scrollTo(0, 0)")
            tab.screenshot(path=artifacts / f"{name}.png", full_page=True)
    if os.environ.get("UPDATE_SCREENSHOT"):  # the README's picture
        shutil.copy(artifacts / "desktop-light.png", REPO / "docs" / "screenshot.png")
