"""The web chat: a Gradio page over rag.api, with the sources of each answer and the corpus's documents.

Started by ``python app.py`` or ``rag serve``. It binds 127.0.0.1 unless told otherwise, sends
nothing off the machine, and shows every text through rag.web_render, which escapes it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

# Read by Gradio at import time: no version check, no telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from . import api, llm  # noqa: E402
from .config import Settings  # noqa: E402
from .loaders import SUPPORTED_SUFFIXES  # noqa: E402
from .types import Answer, Citation, IndexNotFoundError, Passage, RagError  # noqa: E402
from .watch import watch  # noqa: E402
from .web_pdf import page_image, quote_pages, source_place  # noqa: E402
from .web_render import (  # noqa: E402
    DOCUMENT_VIEW_PLACEHOLDER,
    SOURCES_PLACEHOLDER,
    SOURCES_SEARCHING,
    message_text,
    open_request,
    render_answer,
    render_confirmation,
    render_document_view,
    render_documents,
    render_error,
    render_export,
    render_no_index,
    render_pager,
    render_report,
    render_sources,
    render_sources_error,
    render_status,
    render_user_message,
)

log = logging.getLogger(__name__)

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_PORT = 7860
# Questions shown on the empty chat, for documents of the default corpus that are in the corpus.
EXAMPLE_QUESTIONS = {
    "colombia-israel-ties.txt": [
        "When did Colombia sever diplomatic ties with Israel?",
        "What did Israeli exports to Colombia consist of?",
    ],
}
EXTRACTIVE = "Extractive: quotes the best sentences, no language model"

CSS = """
#chatbot q { background: rgba(250, 204, 21, .22); font-style: italic; padding: 0 .15em; border-radius: 3px; }
#chatbot a.cite { font-weight: 600; text-decoration: none; cursor: pointer; padding: 0 .1em; }
#chatbot .answer-note { opacity: .8; }
#sources .source { border: 1px solid var(--border-color-primary); border-radius: 8px;
                   padding: .6em .8em; margin-bottom: .7em; }
#sources .source.flash { animation: source-flash 1.5s ease-out; }
@keyframes source-flash { from { background: rgba(250, 204, 21, .5); } to { background: transparent; } }
#sources .source-number { font-weight: 700; }
.source-title { font-weight: 600; }
.source-meta { opacity: .8; font-size: .85em; }
#sources .source-passage { white-space: pre-wrap; margin: .4em 0; font-size: .92em; }
#sources mark, #document-view mark { background: #fde68a; color: #111; padding: 0 .1em; border-radius: 2px; }
#sources mark .quote-number { font-weight: 700; font-size: .7em; margin-right: .15em; color: #92400e; }
.dark #sources mark, .dark #document-view mark, .dark #document-view mark.focus { background: #a16207; color: #fff; }
.dark #sources mark .quote-number { color: #fde68a; }
.relevance { cursor: help; white-space: nowrap; }
.meter i { display: inline-block; width: .45em; height: .8em; margin-right: 1px; border-radius: 1px;
           vertical-align: -.05em; background: var(--body-text-color); }
.meter i.off { opacity: .2; }
button.open-source, button.close-document { font-size: .85em; padding: .15em .6em; border-radius: 6px;
  border: 1px solid var(--border-color-primary); background: var(--button-secondary-background-fill);
  color: var(--body-text-color); cursor: pointer; }
button.close-document { float: right; }
#document-view .document { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: .6em .8em; }
#document-view .document-text { white-space: pre-wrap; max-height: 60vh; overflow-y: auto; font-size: .92em;
                                margin-top: .5em; }
#document-view .pdf-view { margin: .5em 0; }
#document-view .pdf-view figcaption { font-weight: 600; margin-bottom: .3em; }
#document-view .pdf-page { position: relative; line-height: 0; border: 1px solid var(--border-color-primary); }
#document-view .pdf-page img { width: 100%; height: auto; display: block; }
#document-view .pdf-highlight { position: absolute; background: rgba(250, 204, 21, .45);
                                outline: 2px solid rgba(217, 119, 6, .9); border-radius: 2px; }
details.related, details.unverified { margin-top: .7em; border: 1px dashed var(--border-color-primary);
                                       border-radius: 8px; padding: .4em .8em; }
details.related summary, details.unverified summary { cursor: pointer; }
.related-text, .unverified-text { white-space: pre-wrap; font-size: .9em; opacity: .85; margin: .2em 0 .5em; }
.index-activity { font-style: italic; }
table.documents { width: 100%; }
.report-problem { color: var(--error-text-color, #b91c1c); }
#pager { align-items: center; }
#document-view .pdf-scroll { overflow-x: auto; }
@media (max-width: 640px) {
  #chatbot { height: 60vh !important; }
  #document-view .pdf-page { width: 760px; }  /* a page's words stay legible: scroll sideways */
}
"""

# A marker click scrolls to its quote and flashes its card; an "Open the document" button asks
# the server for the document view; the browser alone would jump the whole page.
HEAD = """
<script>
document.addEventListener("click", (event) => {
  const target = event.target.closest ? event.target : null;
  if (!target) return;
  const link = target.closest("a.cite");
  if (link) {
    event.preventDefault();
    const quote = document.getElementById(link.getAttribute("href").slice(1));
    const source = quote && quote.closest(".source");
    if (!source) return;
    source.scrollIntoView({behavior: "smooth", block: "nearest"});
    source.classList.remove("flash");
    void source.offsetWidth;
    source.classList.add("flash");
    return;
  }
  const open = target.closest("button.open-source");
  if (open) {
    window.ragOpenRequest = open.getAttribute("data-open");
    document.querySelector("#open-trigger").click();
    return;
  }
  if (target.closest("button.close-document")) {
    const view = document.querySelector("#document-view .document");
    if (view) view.remove();
  }
}, true);
</script>
"""
# After the document view arrives: bring the quote into view (the page image's highlight first).
SCROLL_TO_QUOTE = """() => { setTimeout(() => {
  const view = document.querySelector('#document-view');
  const target = view && (view.querySelector('.pdf-highlight') || view.querySelector('mark.focus'));
  if (!target) return;
  view.scrollIntoView({block: 'start'});
  const text = view.querySelector('.document-text mark.focus');
  if (text) text.parentElement.scrollTop = text.offsetTop - text.parentElement.offsetTop - 40;
  target.scrollIntoView({block: 'center'});
}, 50); }"""
# A document listing page: small whatever the corpus size.
DOCUMENTS_PER_PAGE = 25
CONVERSATION_KEY = "rag-conversation"

T = TypeVar("T")


class IndexKeeper:
    """Runs this app's index builds one at a time on the calling worker thread.

    Questions asked meanwhile are answered from the last complete index: a build writes a new
    version beside it and switches over only when done. Only the very first build makes questions
    wait, as there is nothing to answer from yet.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.activity: str | None = None
        self._lock = threading.Lock()
        # Loading the model takes seconds: start now, while the page loads, not at the first question.
        self._warm_up = threading.Thread(
            target=api.warm_up, args=(settings.index_dir,), kwargs={"settings": settings}, daemon=True
        )
        self._warm_up.start()

    def run(self, activity: str, build: Callable[[], T]) -> T:
        self._warm_up.join()  # two threads must not load the same model at once
        with self._lock:
            self.activity = activity
            try:
                return build()
            finally:
                self.activity = None

    def has_index(self) -> bool:
        try:
            api.index_status(self.settings.index_dir, settings=self.settings)
        except IndexNotFoundError:
            return False
        return True

    def ensure_index(self) -> None:
        """Build the index from the corpus if there is none yet (waits for a build in progress)."""
        if self.has_index():
            return
        self._warm_up.join()  # two threads must not load the same model at once
        with self._lock:
            if self.has_index():
                return
            self.activity = f"Building the index from {self.settings.corpus_dir} for the first time"
            try:
                s = self.settings
                api.build_index(s.corpus_dir, s.index_dir, settings=s, progress=True)
            finally:
                self.activity = None

    def ensure_ready_to_answer(self) -> None:
        """An index exists and the model is loaded (the page itself need not wait for the model)."""
        self.ensure_index()
        self._warm_up.join()


def engine_settings(settings: Settings) -> dict[str, Settings]:
    """The answer engines a reader may pick, by label; the language model only when configured."""
    engines = {EXTRACTIVE: settings.with_overrides(llm_base_url="")}
    if llm.is_configured(settings):
        engines[f"Language model ({settings.llm_model or settings.llm_base_url})"] = settings
    return engines


def example_questions(corpus_dir: str) -> list[dict]:
    return [
        {"text": question}
        for doc_id, questions in EXAMPLE_QUESTIONS.items()
        if os.path.isfile(os.path.join(corpus_dir, doc_id))
        for question in questions
    ]


def conversation(history: list[dict]) -> list[tuple[str, str]]:
    """(question, answer) pairs of the chat so far, as plain text for the answer engine."""
    pairs, question = [], None
    for message in history:
        if message["role"] == "user":
            question = message_text(message["content"])
        elif question is not None:
            pairs.append((question, message_text(message["content"])))
            question = None
    return pairs


def watch_corpus(keeper: IndexKeeper, stop: threading.Event | None = None) -> threading.Thread:
    """Follow files added, changed or removed in the corpus folder by hand, between the app's own builds."""
    s = keeper.settings

    def build():
        return keeper.run("Updating the index: the corpus folder changed",
                          lambda: api.build_index(s.corpus_dir, s.index_dir, settings=s))

    watcher = threading.Thread(
        target=watch, args=(s.corpus_dir, s.index_dir), name="rag-watch", daemon=True,
        kwargs={"settings": s, "build": build, "stop": stop,
                "on_error": lambda e: log.warning("updating the index after a corpus change failed: %s", e)},
    )
    watcher.start()
    return watcher


def answer_from_dict(data: dict) -> Answer:
    """An :class:`Answer` back from its JSON form (as kept in the browser)."""
    fields = {name: data[name] for name in ("text", "found", "note") if name in data}
    return Answer(
        **fields,
        citations=[Citation(**c) for c in data.get("citations", [])],
        related=[Passage(**p) for p in data.get("related", [])],
    )


def saved_turns(saved: dict | None) -> list[tuple[str, Answer]]:
    """(question, answer) of each finished turn kept in the browser; nothing if it is unreadable."""
    try:
        return [(turn["question"], answer_from_dict(turn["answer"])) for turn in (saved or {}).get("turns", [])]
    except (KeyError, TypeError, ValueError):
        return []


def chat_history(turns: list[tuple[str, Answer]]) -> list[dict]:
    """The chat's messages for these turns, rendered as when they were answered."""
    history = []
    for turn, (question, answer) in enumerate(turns):
        history += [
            {"role": "user", "content": render_user_message(question)},
            {"role": "assistant", "content": render_answer(answer.text, answer.citations, 2 * turn, answer.note)},
        ]
    return history


def build_app(settings: Settings, *, follow_corpus: bool = False) -> gr.Blocks:
    """The page: a Chat tab (conversation, sources, document view, settings) and a Documents tab.

    With ``follow_corpus`` the index also follows files changed in the corpus folder by hand.
    """
    keeper = IndexKeeper(settings)
    if follow_corpus:
        watch_corpus(keeper)
    engines = engine_settings(settings)
    default_engine = list(engines)[-1]  # the language model when one is configured
    corpus_dir, index_dir = settings.corpus_dir, settings.index_dir
    exports = tempfile.mkdtemp(prefix="rag-exports-")

    def document_text(doc_id: str) -> str | None:
        try:
            return api.document(doc_id, index_dir=index_dir, settings=settings).text
        except (KeyError, RagError):
            return None

    def sources_of(answer: Answer, turn: int) -> str:
        return render_sources(answer, turn, document_text, settings.min_relevance)

    def export_file(turns: list[tuple[str, Answer]]):
        """The export button, holding the conversation as Markdown (hidden while there is none)."""
        if not turns:
            return gr.DownloadButton(value=None, visible=False)
        path = Path(tempfile.mkdtemp(dir=exports)) / "conversation.md"
        path.write_text(render_export(turns), encoding="utf-8")
        return gr.DownloadButton(value=str(path), visible=True)

    def chat(message: str, history: list[dict], passages: float, engine: str, kept: dict | None):
        """Stream the answer into the conversation, then fill the sources panel and the JSON, and
        add the turn to the conversation ``kept`` for the browser and the export."""
        question = (message or "").strip()
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        turn = len(history)
        past = conversation(history)
        history = history + [
            {"role": "user", "content": render_user_message(question)},
            {"role": "assistant", "content": "…"},
        ]
        # The box is emptied once, here; later updates leave it alone, so a next question typed
        # while this answer streams is not wiped.
        yield "", history, SOURCES_SEARCHING, None, gr.skip()
        final, partial = None, ""
        try:
            keeper.ensure_ready_to_answer()
            for item in api.stream_answer(
                question, k=int(passages), index_dir=index_dir, history=past,
                settings=engines.get(engine, engines[default_engine]),
            ):
                if isinstance(item, Answer):
                    final = item
                else:
                    partial += item
                    history[-1]["content"] = render_answer(partial, [], turn)
                    yield gr.skip(), history, SOURCES_SEARCHING, None, gr.skip()
        except Exception as e:  # whatever happened, the reader must not be left looking at "…"
            if isinstance(e, (RagError, ValueError)):
                problem = str(e)
            else:
                log.exception("answering %r failed", question)
                problem = f"Answering failed ({type(e).__name__}: {e}); the server log has the details."
            history[-1]["content"] = render_error(problem)
            yield gr.skip(), history, render_sources_error(problem), None, gr.skip()
            return
        history[-1]["content"] = render_answer(final.text, final.citations, turn, final.note)
        kept = {"turns": [*(kept or {}).get("turns", []), {"question": question, "answer": asdict(final)}]}
        yield gr.skip(), history, sources_of(final, turn), asdict(final), kept

    def chat_example(history: list[dict], passages: float, engine: str, kept: dict | None,
                     choice: gr.SelectData):
        yield from chat(choice.value["text"], history, passages, engine, kept)

    def keep_in_browser(kept: dict):
        """After an answer: the conversation in the browser's storage, and the export, as it is now."""
        return kept, export_file(saved_turns(kept))

    def restore_conversation(saved: dict | None):
        """The conversation kept in this browser, as it was before the page was reloaded."""
        turns = saved_turns(saved)
        if not turns:
            return [], SOURCES_PLACEHOLDER, export_file([]), {"turns": []}
        return (chat_history(turns), sources_of(turns[-1][1], 2 * len(turns) - 2), export_file(turns),
                saved)

    def open_source(value: str):
        """The document view for an "Open the document" button: the text at the quote, and for a
        PDF the cited page as an image with the quoted words highlighted."""
        try:
            request = open_request(value or "")
            doc = api.document(request["doc_id"], index_dir=index_dir, settings=settings)
        except (ValueError, KeyError, RagError):
            return render_sources_error("That document is no longer in the index.")
        quote, start, end = request["quote"], request["start"], request["end"]
        if doc.text[start:end] != quote:
            start = doc.text.find(quote)  # the document changed since the answer
            if start < 0:
                return render_sources_error("That quote is no longer in the document.")
            end = start + len(quote)
        page = doc.page_at(start)
        image = None
        if page is not None and request["doc_id"].lower().endswith(".pdf"):
            # The first page holding the quote's words, with those words (a quote may run on
            # across a page break); an index without source maps falls back to the start's page.
            on_page = next(iter(quote_pages(doc, start, end)), None)
            try:
                image = page_image(Path(corpus_dir) / request["doc_id"], on_page.page if on_page else page,
                                   on_page.text if on_page else quote, on_page.occurrence if on_page else 0)
            except Exception as e:  # a page that cannot be drawn still leaves the text view
                log.warning("rendering page %s of %s failed: %s", page, request["doc_id"], e)
        return render_document_view(doc.title, doc.doc_id, doc.text, start, end, request["number"],
                                    page=page, page_image=image,
                                    source_place=source_place(doc, start, end, Path(corpus_dir) / doc.doc_id))

    def listing(at: dict):
        """Status, banner, one page of the document list (``at``: its search and offset), its pager
        and the removal choices."""
        search, offset = at.get("search", ""), at.get("offset", 0)
        try:
            status = api.index_status(index_dir, settings=settings)
            summary = render_status(status.documents, status.chunks, status.model, status.built_at,
                                    keeper.activity)
            page = api.document_page(index_dir, search=search or "", offset=int(offset or 0),
                                     limit=DOCUMENTS_PER_PAGE, settings=settings)
        except RagError as e:
            summary = render_no_index(str(e), keeper.activity)
            page = api.DocumentPage([], 0, 0, 0)
        choices = [(f"{d.title} ({d.doc_id})", d.doc_id) for d in page.documents]
        last = page.offset + len(page.documents)
        return (
            summary, summary, render_documents(page.documents),
            render_pager(page.offset, last, page.matching, page.total, bool(search)),
            gr.Button(interactive=page.offset > 0), gr.Button(interactive=last < page.matching),
            {"search": search, "offset": page.offset}, gr.Dropdown(choices=choices),
        )

    def on_load(saved: dict | None, progress=gr.Progress(track_tqdm=True)):
        try:
            keeper.ensure_index()
        except RagError:
            pass  # the listing shows why there is no index
        return (*restore_conversation(saved), *listing({}))

    def upload_limits_problem(files: list[str]) -> str | None:
        if len(files) > settings.max_upload_files:
            return f"{len(files)} files in one upload; at most {settings.max_upload_files} at a time"
        total = sum(os.path.getsize(f) for f in files)
        if total > settings.max_upload_mb * 1024 * 1024:
            return (f"{total / 1048576:.1f} MB in one upload; at most {settings.max_upload_mb:g} MB "
                    "at a time")
        return None

    def on_upload(files: list[str] | None, at: dict, progress=gr.Progress(track_tqdm=True)):
        files = files or []
        done, problems = [], []
        too_much = upload_limits_problem(files)
        if too_much:
            problems.append(f"Nothing was added: {too_much}.")
        else:
            try:
                result = keeper.run(
                    f"Adding {len(files)} file(s)",
                    lambda: api.add_files(files, corpus_dir, index_dir, settings=settings, progress=True),
                )
            except RagError as e:
                problems.append(f"Nothing was added: {e}")
            else:
                for name, doc_id in result.added:
                    done.append(f"Added {name}" + (f" as {doc_id}" if doc_id != name else ""))
                problems += [f"{name} was not added: {reason}" for name, reason in result.rejected]
                added = {doc_id for _, doc_id in result.added}
                if result.stats:  # only what this upload brought; the rest was reported before
                    problems += [f"Skipped {doc_id}: {reason}" for doc_id, reason in result.stats.skipped
                                 if doc_id in added]
        return (None, render_report(done, problems), gr.Button(visible=False), *listing(at))

    def on_remove_asked(doc_id: str | None):
        if not doc_id:
            return (render_report([], ["Choose a document to remove first."]), gr.Group(visible=False),
                    gr.HTML(), gr.Button(visible=False))
        return ("", gr.Group(visible=True),
                gr.HTML(render_confirmation(doc_id)), gr.Button(visible=False))

    def on_remove(doc_id: str | None, at: dict, progress=gr.Progress(track_tqdm=True)):
        hidden = gr.Group(visible=False)
        if not doc_id:
            return (render_report([], ["Choose a document to remove first."]), hidden, gr.Button(visible=False),
                    *listing(at))
        try:
            keeper.run(
                f"Removing {doc_id}",
                lambda: api.remove_document(doc_id, corpus_dir, index_dir, settings=settings, progress=True),
            )
        except RagError as e:
            return (render_report([], [f"{doc_id} was not removed: {e}"]), hidden, gr.Button(visible=False),
                    *listing(at))
        views = listing(at)
        report = render_report([f"Moved {doc_id} to the trash and out of the index."], [])
        return (report, hidden, gr.Button(f"Undo: restore {doc_id}", visible=True),
                *views[:-1], gr.Dropdown(choices=views[-1].choices, value=doc_id))

    def on_restore(doc_id: str | None, at: dict, progress=gr.Progress(track_tqdm=True)):
        if not doc_id:
            return (render_report([], ["Name the document to restore."]), gr.Button(visible=False),
                    *listing(at))
        try:
            keeper.run(
                f"Restoring {doc_id}",
                lambda: api.restore_document(doc_id, corpus_dir, index_dir, settings=settings, progress=True),
            )
        except RagError as e:
            return (render_report([], [f"{doc_id} was not restored: {e}"]), gr.Button(visible=False),
                    *listing(at))
        return (render_report([f"Restored {doc_id} to the corpus and the index."], []), gr.Button(visible=False),
                *listing(at))

    def on_rebuild(at: dict, progress=gr.Progress(track_tqdm=True)):
        try:
            stats = keeper.run(
                "Rebuilding the whole index",
                lambda: api.build_index(corpus_dir, index_dir, full=True, settings=settings, progress=True),
            )
        except RagError as e:
            return (render_report([], [f"The index was not rebuilt: {e}"]), gr.Button(visible=False),
                    *listing(at))
        skipped = [f"Skipped {doc_id}: {reason}" for doc_id, reason in stats.skipped]
        return (render_report([f"Rebuilt: {stats.added} documents, {stats.chunks} chunks"], skipped),
                gr.Button(visible=False), *listing(at))

    with gr.Blocks(title="rag: ask your articles", delete_cache=(3600, 86400)) as demo:
        saved = gr.BrowserState({"turns": []}, storage_key=CONVERSATION_KEY, secret=browser_secret(settings))
        kept = gr.State({"turns": []})  # the same, on the server for this page: what chat adds to
        gr.Markdown("## Ask your articles\nEvery quote below is checked word for word against its source.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                banner = gr.HTML(elem_id="index-banner")
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            elem_id="chatbot", show_label=False, height=520,
                            examples=example_questions(corpus_dir) or None,
                            placeholder="Ask a question about the articles in the corpus.",
                            latex_delimiters=[], buttons=["copy", "copy_all"], feedback_options=None,
                        )
                        question = gr.Textbox(
                            elem_id="question", placeholder="Ask a question", show_label=False,
                            submit_btn=True, max_lines=6,
                        )
                        with gr.Row():
                            clear = gr.Button("Clear conversation", elem_id="clear", size="sm")
                            export = gr.DownloadButton("Export conversation (Markdown)", elem_id="export",
                                                       size="sm", visible=False)
                        with gr.Accordion("Answer options", open=False):
                            passages = gr.Slider(
                                1, 20, value=settings.top_k, step=1, label="Passages to read",
                                info="More finds scattered facts; fewer keeps answers focused.",
                                elem_id="passages",
                            )
                            engine = gr.Radio(
                                list(engines), value=default_engine, label="Answer engine",
                                info="Either way, only quotes found word for word in the corpus are shown."
                                if len(engines) > 1 else
                                "Set RAG_LLM_BASE_URL (and RAG_LLM_MODEL) to offer a local language model as well.",
                                elem_id="engine",
                            )
                    with gr.Column(scale=2):
                        sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources")
                        document_view = gr.HTML(DOCUMENT_VIEW_PLACEHOLDER, elem_id="document-view")
                        open_box = gr.Textbox(visible="hidden", elem_id="open-request")
                        open_trigger = gr.Button(visible="hidden", elem_id="open-trigger")
                        answer_json = gr.JSON(visible=False, label="Answer")
            with gr.Tab("Documents", id="documents") as documents_tab:
                status = gr.HTML(elem_id="index-status")
                with gr.Row():
                    with gr.Column():
                        upload = gr.File(
                            label=f"Add documents ({', '.join(sorted(SUPPORTED_SUFFIXES))}; up to "
                                  f"{settings.max_file_mb:g} MB each, {settings.max_upload_files} files and "
                                  f"{settings.max_upload_mb:g} MB at a time)",
                            file_count="multiple", elem_id="upload",
                        )
                    with gr.Column():
                        remove_choice = gr.Dropdown(
                            label="Document (of this page, or type its file name)", choices=[],
                            allow_custom_value=True, elem_id="remove-choice",
                        )
                        with gr.Row():
                            remove = gr.Button("Remove…", elem_id="remove", size="sm")
                            rebuild = gr.Button("Rebuild the whole index", elem_id="rebuild", size="sm")
                        with gr.Group(visible=False, elem_id="confirm-remove") as confirm:
                            confirm_text = gr.HTML(elem_id="confirm-text")
                            with gr.Row():
                                confirm_yes = gr.Button("Move to trash", variant="stop", size="sm",
                                                        elem_id="confirm-remove-yes")
                                confirm_no = gr.Button("Cancel", size="sm", elem_id="confirm-remove-no")
                        action_report = gr.HTML(elem_id="action-report")
                        undo = gr.Button("Undo", visible=False, size="sm", elem_id="undo")
                with gr.Row(elem_id="pager"):
                    search = gr.Textbox(placeholder="Search titles and file names", show_label=False,
                                        elem_id="doc-search", scale=3)
                    previous_page = gr.Button("← Previous", size="sm", elem_id="previous-page", scale=0)
                    pager = gr.HTML(elem_id="page-label")
                    next_page = gr.Button("Next →", size="sm", elem_id="next-page", scale=0)
                documents_table = gr.HTML(elem_id="documents")
                at = gr.State({"search": "", "offset": 0})

        views = [banner, status, documents_table, pager, previous_page, next_page, at, remove_choice]
        one_indicator = {"show_progress_on": [action_report]}
        chat_outputs = [question, chatbot, sources, answer_json, kept]
        keeping = {"fn": keep_in_browser, "inputs": kept, "outputs": [saved, export],
                   "api_visibility": "private", "show_progress": "hidden"}
        question.submit(chat, [question, chatbot, passages, engine, kept], chat_outputs,
                        api_name="chat", concurrency_limit=4).then(**keeping)
        chatbot.example_select(chat_example, [chatbot, passages, engine, kept], chat_outputs,
                               api_visibility="private", concurrency_limit=4).then(**keeping)
        for clearing in (clear.click, chatbot.clear):
            clearing(lambda: ([], SOURCES_PLACEHOLDER, None, {"turns": []}, {"turns": []},
                              gr.DownloadButton(visible=False), ""),
                     None, [chatbot, sources, answer_json, kept, saved, export, document_view],
                     api_visibility="private")
        open_trigger.click(open_source, open_box, document_view, js="() => window.ragOpenRequest || ''",
                           api_visibility="private", show_progress="minimal").then(
            None, None, None, js=SCROLL_TO_QUOTE)
        demo.load(on_load, saved, [chatbot, sources, export, kept, *views], api_visibility="private",
                  concurrency_limit=None, show_progress_on=[banner])
        documents_tab.select(listing, at, views, api_visibility="private",
                             concurrency_limit=None, show_progress="hidden")
        search.submit(lambda text: listing({"search": text, "offset": 0}), search, views,
                      api_visibility="private", show_progress="hidden")
        previous_page.click(lambda a: listing({**a, "offset": max(0, a["offset"] - DOCUMENTS_PER_PAGE)}), at,
                            views, api_visibility="private", show_progress="hidden")
        next_page.click(lambda a: listing({**a, "offset": a["offset"] + DOCUMENTS_PER_PAGE}), at, views,
                        api_visibility="private", show_progress="hidden")
        upload.upload(on_upload, [upload, at], [upload, action_report, undo, *views],
                      api_name="upload", **one_indicator)
        remove.click(on_remove_asked, remove_choice, [action_report, confirm, confirm_text, undo],
                     api_visibility="private", show_progress="hidden")
        confirm_no.click(lambda: gr.Group(visible=False), None, confirm, api_visibility="private",
                         show_progress="hidden")
        confirm_yes.click(on_remove, [remove_choice, at], [action_report, confirm, undo, *views],
                          api_name="remove", **one_indicator)
        undo.click(on_restore, [remove_choice, at], [action_report, undo, *views],
                   api_name="restore", **one_indicator)
        rebuild.click(on_rebuild, at, [action_report, undo, *views], api_name="rebuild",
                      **one_indicator)
    return demo


def browser_secret(settings: Settings) -> str:
    """The key the conversation kept in the browser is sealed with: stable across restarts of the
    app over the same index, so a reload after a restart still finds the conversation. It guards
    nothing secret: the conversation is the reader's own, in their own browser."""
    return hashlib.sha256(f"rag-conversation:{Path(settings.index_dir).resolve()}".encode()).hexdigest()


def launch_options(settings: Settings, host: str, port: int, auth: tuple[str, str] | None) -> dict:
    """Everything passed to ``Blocks.launch``: local, private, quiet, and the page's own CSS and script."""
    return {
        "server_name": host,
        "server_port": port,
        "auth": auth,
        "share": False,
        "quiet": True,  # Gradio's own hints (share links, ...) do not apply; serve() says what does
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "run_history": False,  # past questions are not kept in the browser by Gradio (rag keeps its own)
        "footer_links": ["api"],  # the app has its own options; Gradio's settings link would be a second
        "max_file_size": int(settings.max_file_mb * 1024 * 1024),
        "css": CSS,
        "head": HEAD,
        "prevent_thread_lock": True,
    }


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` (from --auth or RAG_AUTH) as Gradio's auth pair; empty means no login."""
    if not value:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise ValueError("login must be given as USER:PASSWORD (--auth or RAG_AUTH)")
    return user, password


# Gradio checks that the started server answers on localhost; on a loaded machine that check
# can time out although the server is fine, so it is tried again this many times.
LAUNCH_ATTEMPTS = 3


def check_can_serve(settings: Settings, host: str, port: int, login: tuple[str, str] | None,
                    allow_no_login: bool) -> None:
    """Refuse, before anything loads, what would fail later or expose the corpus: a missing corpus
    folder, a non-local address without a login, a port already taken."""
    if not Path(settings.corpus_dir).is_dir():
        raise RagError(f"corpus folder {settings.corpus_dir} does not exist: create it (it may be empty) "
                       "or name another with --corpus DIR")
    if host not in LOOPBACK_HOSTS and login is None and not allow_no_login:
        raise RagError(
            f"refusing to serve on {host} without a login: anyone who can reach this port could read the "
            "corpus and upload, remove and rebuild through its API. Set a login with RAG_AUTH=USER:PASSWORD "
            "(or --auth), serve 127.0.0.1 only, or pass --allow-no-login on a network you trust"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise RagError(f"port {port} on {host} is already in use; choose another with --port N") from None
            raise RagError(f"cannot listen on {host}:{port} ({e.strerror or e}); check --host and --port") from None


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, auth: str | None = None,
    follow_corpus: bool = False, allow_no_login: bool = False,
) -> int:
    """Run the web chat until interrupted."""
    login = parse_auth(auth or settings.auth)
    check_can_serve(settings, host, port, login, allow_no_login)
    if host not in LOOPBACK_HOSTS and login is None:
        print(f"rag: warning: serving on {host} without a login (--allow-no-login)", file=sys.stderr)
    demo = build_app(settings, follow_corpus=follow_corpus)
    demo.queue()
    options = launch_options(settings, host, port, login)
    for attempt in range(1, LAUNCH_ATTEMPTS + 1):
        try:
            demo.launch(**options)
            break
        except ValueError as e:
            if "localhost is not accessible" not in str(e):
                raise
            demo.close()
            if attempt == LAUNCH_ATTEMPTS:
                raise RagError(
                    f"the web server started but did not answer on {host}:{port} after {attempt} tries; "
                    "the machine may be too busy, or a proxy setting (http_proxy without NO_PROXY=127.0.0.1) "
                    "intercepts local requests"
                ) from None
            time.sleep(2 * attempt)
        except OSError as e:  # the port was taken between the check and the start
            raise RagError(f"cannot serve on {host}:{port} ({e}); choose another port with --port N") from None
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"rag: the web chat is at http://{shown}:{port}/ (Ctrl+C stops it)", file=sys.stderr, flush=True)
    try:
        demo.block_thread()
    finally:
        demo.close()
    return 0
