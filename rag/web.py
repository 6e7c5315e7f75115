"""The web chat: a Gradio page over rag.api, with the sources of each answer and the corpus's documents.

Started by ``python app.py`` or ``rag serve``. It binds 127.0.0.1 unless told otherwise, sends
nothing off the machine, and shows every text through rag.web_render, which escapes it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TypeVar

# Read by Gradio at import time: no version check, no telemetry.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402

from . import api, llm  # noqa: E402
from .config import Settings  # noqa: E402
from .loaders import SUPPORTED_SUFFIXES  # noqa: E402
from .types import Answer, IndexNotFoundError, RagError  # noqa: E402
from .watch import watch  # noqa: E402
from .web_render import (  # noqa: E402
    SOURCES_PLACEHOLDER,
    SOURCES_SEARCHING,
    message_text,
    render_answer,
    render_documents,
    render_error,
    render_no_index,
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
#sources .source-title { font-weight: 600; }
#sources .source-meta { opacity: .75; font-size: .85em; }
#sources .source-passage { white-space: pre-wrap; margin: .4em 0 0; font-size: .92em; }
#sources mark { background: #fde68a; color: #111; padding: 0 .1em; border-radius: 2px; }
.index-activity { font-style: italic; }
table.documents { width: 100%; }
.report-problem { color: var(--error-text-color, #b91c1c); }
"""

# A marker click scrolls to its source and flashes it; the browser alone would jump the whole page.
HEAD = """
<script>
document.addEventListener("click", (event) => {
  const link = event.target.closest && event.target.closest("a.cite");
  if (!link) return;
  event.preventDefault();
  const source = document.getElementById(link.getAttribute("href").slice(1));
  if (!source) return;
  source.scrollIntoView({behavior: "smooth", block: "nearest"});
  source.classList.remove("flash");
  void source.offsetWidth;
  source.classList.add("flash");
}, true);
</script>
"""

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


def build_app(settings: Settings, *, follow_corpus: bool = False) -> gr.Blocks:
    """The page: a Chat tab (conversation, sources, settings) and a Documents tab.

    With ``follow_corpus`` the index also follows files changed in the corpus folder by hand.
    """
    keeper = IndexKeeper(settings)
    if follow_corpus:
        watch_corpus(keeper)
    engines = engine_settings(settings)
    default_engine = list(engines)[-1]  # the language model when one is configured
    corpus_dir, index_dir = settings.corpus_dir, settings.index_dir

    def document_text(doc_id: str) -> str | None:
        try:
            return api.document(doc_id, index_dir=index_dir, settings=settings).text
        except (KeyError, RagError):
            return None

    def chat(message: str, history: list[dict], passages: float, engine: str):
        """Stream the answer into the conversation, then fill the sources panel and the JSON."""
        question = (message or "").strip()
        if not question:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        turn = len(history)
        past = conversation(history)
        history = history + [
            {"role": "user", "content": render_user_message(question)},
            {"role": "assistant", "content": "…"},
        ]
        # The box is emptied once, here; later updates leave it alone, so a next question typed
        # while this answer streams is not wiped.
        yield "", history, SOURCES_SEARCHING, None
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
                    yield gr.skip(), history, SOURCES_SEARCHING, None
        except Exception as e:  # whatever happened, the reader must not be left looking at "…"
            if isinstance(e, (RagError, ValueError)):
                problem = str(e)
            else:
                log.exception("answering %r failed", question)
                problem = f"Answering failed ({type(e).__name__}: {e}); the server log has the details."
            history[-1]["content"] = render_error(problem)
            yield gr.skip(), history, render_sources_error(problem), None
            return
        history[-1]["content"] = render_answer(final.text, final.citations, turn, final.note)
        yield gr.skip(), history, render_sources(final, turn, document_text), asdict(final)

    def chat_example(history: list[dict], passages: float, engine: str, choice: gr.SelectData):
        yield from chat(choice.value["text"], history, passages, engine)

    def index_views():
        """Banner, status, documents table and removal choices, as they are now."""
        try:
            status = api.index_status(index_dir, settings=settings)
            documents = api.documents(index_dir, settings=settings)
            summary = render_status(status.documents, status.chunks, status.model, status.built_at,
                                    keeper.activity)
        except RagError as e:
            documents = []
            summary = render_no_index(str(e), keeper.activity)
        choices = [(f"{d.title} ({d.doc_id})", d.doc_id) for d in documents]
        return summary, summary, render_documents(documents), gr.Dropdown(choices=choices, value=None)

    def on_load(progress=gr.Progress(track_tqdm=True)):
        try:
            keeper.ensure_index()
        except RagError:
            pass  # index_views shows why there is no index
        return index_views()

    def on_upload(files: list[str] | None, progress=gr.Progress(track_tqdm=True)):
        done, problems = [], []
        try:
            result = keeper.run(
                f"Adding {len(files or [])} file(s)",
                lambda: api.add_files(files or [], corpus_dir, index_dir, settings=settings, progress=True),
            )
        except RagError as e:
            problems.append(f"Nothing was added: {e}")
        else:
            for name, doc_id in result.added:
                done.append(f"Added {name}" + (f" as {doc_id}" if doc_id != name else ""))
            problems += [f"{name} was not added: {reason}" for name, reason in result.rejected]
            if result.stats:
                problems += [f"Skipped {doc_id}: {reason}" for doc_id, reason in result.stats.skipped]
        return (None, render_report(done, problems), *index_views())

    def on_remove(doc_id: str | None, progress=gr.Progress(track_tqdm=True)):
        if not doc_id:
            return (render_report([], ["Choose a document to remove first."]), *index_views())
        try:
            keeper.run(
                f"Removing {doc_id}",
                lambda: api.remove_document(doc_id, corpus_dir, index_dir, settings=settings, progress=True),
            )
        except RagError as e:
            return (render_report([], [f"{doc_id} was not removed: {e}"]), *index_views())
        return (render_report([f"Removed {doc_id} from the corpus and the index"], []), *index_views())

    def on_rebuild(progress=gr.Progress(track_tqdm=True)):
        try:
            stats = keeper.run(
                "Rebuilding the whole index",
                lambda: api.build_index(corpus_dir, index_dir, full=True, settings=settings, progress=True),
            )
        except RagError as e:
            return (render_report([], [f"The index was not rebuilt: {e}"]), *index_views())
        skipped = [f"Skipped {doc_id}: {reason}" for doc_id, reason in stats.skipped]
        return (render_report([f"Rebuilt: {stats.added} documents, {stats.chunks} chunks"], skipped),
                *index_views())

    with gr.Blocks(title="rag: ask your articles", delete_cache=(3600, 86400)) as demo:
        gr.Markdown("## Ask your articles\nEvery quote below is checked word for word against its source.")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                banner = gr.HTML(elem_id="index-banner")
                with gr.Row():
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(
                            elem_id="chatbot", label="Conversation", height=520,
                            examples=example_questions(corpus_dir) or None,
                            placeholder="Ask a question about the articles in the corpus.",
                            latex_delimiters=[], buttons=["copy", "copy_all"], feedback_options=None,
                        )
                        question = gr.Textbox(
                            elem_id="question", placeholder="Ask a question", show_label=False,
                            submit_btn=True, max_lines=6,
                        )
                        clear = gr.Button("Clear conversation", elem_id="clear", size="sm")
                        with gr.Accordion("Settings", open=False):
                            passages = gr.Slider(
                                1, 20, value=settings.top_k, step=1, label="Passages to read",
                                info="More finds scattered facts; fewer keeps answers focused.",
                                elem_id="passages",
                            )
                            engine = gr.Radio(
                                list(engines), value=default_engine, label="Answer engine",
                                info=None if len(engines) > 1 else
                                "Set RAG_LLM_BASE_URL to offer a local language model as well.",
                                elem_id="engine",
                            )
                    with gr.Column(scale=2):
                        sources = gr.HTML(SOURCES_PLACEHOLDER, elem_id="sources")
                        answer_json = gr.JSON(visible=False, label="Answer")
            with gr.Tab("Documents", id="documents") as documents_tab:
                status = gr.HTML(elem_id="index-status")
                with gr.Row():
                    with gr.Column():
                        upload = gr.File(
                            label=f"Add documents ({', '.join(sorted(SUPPORTED_SUFFIXES))}; "
                                  f"up to {settings.max_file_mb:g} MB each)",
                            file_count="multiple", file_types=sorted(SUPPORTED_SUFFIXES),
                            elem_id="upload",
                        )
                        upload_report = gr.HTML(elem_id="upload-report")
                    with gr.Column():
                        remove_choice = gr.Dropdown(label="Document", choices=[], elem_id="remove-choice")
                        remove = gr.Button("Remove from corpus and index", variant="stop", elem_id="remove")
                        rebuild = gr.Button("Rebuild the whole index", elem_id="rebuild")
                        action_report = gr.HTML(elem_id="action-report")
                documents_table = gr.HTML(elem_id="documents")

        views = [banner, status, documents_table, remove_choice]
        chat_outputs = [question, chatbot, sources, answer_json]
        question.submit(chat, [question, chatbot, passages, engine], chat_outputs,
                        api_name="chat", concurrency_limit=4)
        chatbot.example_select(chat_example, [chatbot, passages, engine], chat_outputs,
                               api_visibility="private", concurrency_limit=4)
        for clearing in (clear.click, chatbot.clear):
            clearing(lambda: ([], SOURCES_PLACEHOLDER, None), None, [chatbot, sources, answer_json],
                     api_visibility="private")
        demo.load(on_load, None, views, api_visibility="private", concurrency_limit=None)
        documents_tab.select(index_views, None, views, api_visibility="private", concurrency_limit=None)
        upload.upload(on_upload, upload, [upload, upload_report, *views], api_name="upload")
        remove.click(on_remove, remove_choice, [action_report, *views], api_name="remove")
        rebuild.click(on_rebuild, None, [action_report, *views], api_name="rebuild")
    return demo


def launch_options(settings: Settings, host: str, port: int, auth: tuple[str, str] | None) -> dict:
    """Everything passed to ``Blocks.launch``: local, private, and the page's own CSS and script."""
    return {
        "server_name": host,
        "server_port": port,
        "auth": auth,
        "share": False,
        "ssr_mode": False,
        "mcp_server": False,
        "pwa": False,
        "enable_monitoring": False,
        "run_history": False,  # past questions are not kept in the browser
        "footer_links": ["api", "settings"],
        "max_file_size": int(settings.max_file_mb * 1024 * 1024),
        "css": CSS,
        "head": HEAD,
    }


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``USER:PASSWORD`` (from --auth or RAG_AUTH) as Gradio's auth pair; empty means no login."""
    if not value:
        return None
    user, colon, password = value.partition(":")
    if not colon or not user or not password:
        raise ValueError("login must be given as USER:PASSWORD (--auth or RAG_AUTH)")
    return user, password


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, auth: str | None = None,
    follow_corpus: bool = False,
) -> int:
    """Run the web chat until interrupted."""
    login = parse_auth(auth or os.environ.get("RAG_AUTH"))
    if host not in LOOPBACK_HOSTS and login is None:
        print(f"rag: warning: serving on {host} without a login; anyone who can reach this port can "
              "read and change the corpus (set RAG_AUTH=USER:PASSWORD)", file=sys.stderr)
    demo = build_app(settings, follow_corpus=follow_corpus)
    demo.queue()
    demo.launch(**launch_options(settings, host, port, login))
    return 0
