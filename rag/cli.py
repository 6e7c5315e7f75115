"""`rag` on the command line: a thin shell over rag.api.

Only the standard library, rag.config and rag.types load at start; each command imports the
heavy parts (torch, FAISS, BM25) when it runs, so `rag --help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

from .config import load_settings
from .types import RagError


def _settings(args: argparse.Namespace):
    return load_settings(
        corpus_dir=getattr(args, "corpus", None),
        index_dir=getattr(args, "index", None),
        model=args.model,
        threads=args.threads,
        backend=getattr(args, "backend", None),
        index_backend=getattr(args, "index_backend", None),
        llm_gguf=getattr(args, "llm_gguf", None),
    )


def _print_stats(settings, stats, reported: set | None = None) -> None:
    """The build's counts and each skipped file with its reason; a skip already in ``reported``
    (a watch's earlier builds, which it is added to) is counted, not listed again."""
    print(
        f"indexed {settings.corpus_dir} into {settings.index_dir}: {stats.added} added, "
        f"{stats.updated} updated, {stats.removed} removed, {stats.unchanged} unchanged, "
        f"{len(stats.skipped)} skipped; {stats.chunks} chunks",
        flush=True,
    )
    seen = reported if reported is not None else set()
    for path, reason in stats.skipped:
        if (path, reason) not in seen:
            print(f"  skipped {path}: {reason}", flush=True)
    repeated = sum(skip in seen for skip in stats.skipped)
    if repeated:
        print(f"  ({repeated} skipped as before)", flush=True)
    seen.update(stats.skipped)


def _cmd_index(args: argparse.Namespace) -> int:
    from .indexer import build_index  # not rag.api: a build needs none of the answering side

    settings = _settings(args)
    if args.watch:
        from .watch import watch

        print(f"watching {settings.corpus_dir} (Ctrl-C to stop)", flush=True)
        reported: set = set()  # each skipped file is listed once per watch, not after every build
        watch(
            settings.corpus_dir, settings.index_dir, settings=settings,
            on_build=lambda stats: _print_stats(settings, stats, reported),
            on_error=lambda error: print(f"rag: error: {error}", file=sys.stderr, flush=True),
        )
        return 0
    if args.ray:
        from .ray_embed import build_index_on_ray

        stats = build_index_on_ray(settings.corpus_dir, settings.index_dir, args.ray, full=args.full,
                                   settings=settings, progress=True)
        _print_stats(settings, stats)
        return 0
    stats = build_index(
        settings.corpus_dir, settings.index_dir, full=args.full, settings=settings, progress=True
    )
    _print_stats(settings, stats)
    return 0


def _cmd_search(args: argparse.Namespace) -> int:
    from .api import retrieve

    settings = _settings(args)
    passages = retrieve(args.query, args.k, index_dir=settings.index_dir, mode=args.mode, unit=args.unit,
                        settings=settings)
    if args.json:
        print(json.dumps([asdict(p) for p in passages], indent=2, ensure_ascii=False))
        return 0
    if not passages:
        print("no passages found")
    for rank, p in enumerate(passages, 1):
        page = f", page {p.page}" if p.page is not None else ""
        print(f"[{rank}] {p.title} ({p.doc_id}{page}) score {p.score:.3f}")
        print(textwrap.indent(p.text, "    ") + "\n")
    return 0


def _cmd_ask(args: argparse.Namespace) -> int:
    from .api import answer
    from .llm import local_model

    with local_model(_settings(args)) as settings:
        result = answer(args.question, k=args.k, index_dir=settings.index_dir, settings=settings)
    if args.json:
        print(json.dumps(asdict(result), indent=2, ensure_ascii=False))
        return 0
    print(result.text)
    if result.note:
        print(f"\n({result.note})")
    _print_sources(result)
    _print_related(result)
    return 0


def _print_related(result) -> None:
    """A refusal's closest passages, marked as what they are: not an answer."""
    if result.found or not result.related:
        return
    print("\nPossibly related passages (not an answer):")
    for rank, p in enumerate(result.related, 1):
        page = f", page {p.page}" if p.page is not None else ""
        text = " ".join(p.text.split())
        print(f"[{rank}] {p.title} ({p.doc_id}{page})")
        print(textwrap.indent(textwrap.shorten(text, 300, placeholder=" …"), "    "))


def _print_sources(result) -> None:
    if result.citations:
        print("\nSources:")
    for c in result.citations:
        page = f", page {c.page}" if c.page is not None else ""
        print(f"[{c.number}] {c.title} ({c.doc_id}{page})\n    \"{c.quote}\"")


CHAT_HELP = """Ask a question; follow-ups ("and when was that?") read the conversation.
  /sources   the quotes and documents behind the last answer
  /new       start a new conversation
  /quit      leave (or Ctrl-D)"""


def _chat_history_file() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "rag" / "chat_history"


def _line_editing() -> Path | None:
    """Arrow keys and earlier questions (kept across sessions) at a terminal; the history file,
    or None where there is no terminal or no readline."""
    if not sys.stdin.isatty():
        return None
    try:
        import readline
    except ImportError:  # Windows without pyreadline
        return None
    history = _chat_history_file()
    try:
        readline.read_history_file(history)
    except OSError:
        pass
    readline.set_history_length(1000)
    return history


def _save_line_history(history: Path | None) -> None:
    if history is None:
        return
    import readline

    try:
        history.parent.mkdir(parents=True, exist_ok=True)
        readline.write_history_file(history)
    except OSError:
        pass


def _cmd_chat(args: argparse.Namespace) -> int:
    from .llm import local_model

    with local_model(_settings(args)) as settings:
        return _chat(args, settings)


def _chat(args: argparse.Namespace, settings) -> int:
    from .api import answer, index_status, warm_up

    status = index_status(settings.index_dir, settings=settings)  # no index: say so before asking
    warm_up(settings.index_dir, settings=settings)  # the model and index load once, now
    history_file = _line_editing()
    prompt = "> " if sys.stdin.isatty() else ""
    documents = f"{status.documents} document{'' if status.documents == 1 else 's'}"
    print(f"rag chat over {documents} in {settings.index_dir}. /help for commands.", flush=True)
    conversation: list[tuple[str, str]] = []
    last = None
    try:
        while True:
            try:
                line = input(prompt).strip()
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:  # Ctrl-C drops the line being typed, as a shell does
                print()
                continue
            if not line:
                continue
            command = line.lower()
            if command in ("/quit", "/exit", "/q"):
                return 0
            if command in ("/help", "/?"):
                print(CHAT_HELP)
            elif command == "/sources":
                if last is not None and last.citations:
                    _print_sources(last)
                else:
                    print("(no sources: the last answer quoted nothing)")
            elif command == "/new":
                conversation, last = [], None
                print("(new conversation)")
            elif command.startswith("/"):
                print(f"unknown command {line.split()[0]}; /help lists them")
            else:
                try:
                    last = answer(line, k=args.k, index_dir=settings.index_dir, history=conversation,
                                  settings=settings)
                except (RagError, ValueError) as e:  # one bad turn does not end the conversation
                    print(f"rag: error: {e}", file=sys.stderr, flush=True)
                    continue
                except KeyboardInterrupt:
                    print("\n(interrupted)")
                    continue
                conversation.append((line, last.text))
                print(last.text + (f"\n({last.note})" if last.note else ""))
                if last.citations:
                    print("Sources: " + "; ".join(f"[{c.number}] {c.title}" for c in last.citations)
                          + "  (/sources for the quotes)")
                _print_related(last)
            print(flush=True)
    finally:
        _save_line_history(history_file)


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.answers:
        return _eval_answers(args)
    if not args.beir:
        raise RagError("rag eval needs --beir DIR or --answers FILE.jsonl")
    from .evaluate import evaluate_beir

    settings = _settings(args)
    report = evaluate_beir(args.beir, split=args.split, mode=args.mode, settings=settings, progress=True)
    if args.json:
        print(json.dumps(asdict(report), indent=2))
        return 0
    print(
        f"{report.dataset} ({report.split}): {report.queries} queries, {report.documents} documents "
        f"in {report.chunks} chunks; mode {report.mode}"
    )
    for name, value in report.metrics.items():
        print(f"  {name:<11} {value:.4f}")
    print(
        f"  query latency p50 {report.latency_ms['p50']:.1f} ms, p95 {report.latency_ms['p95']:.1f} ms; "
        f"index time {report.index_seconds:.1f} s ({settings.threads or 'auto'} encoder thread(s))"
    )
    return 0


def _eval_answers(args: argparse.Namespace) -> int:
    from .answer_eval import evaluate_answers

    # The counter rewrites its line with \r: at a terminal only, never into a file or pipe.
    report = evaluate_answers(args.answers, _settings(args), progress=not args.json and sys.stdout.isatty())
    if args.json:
        print(json.dumps({**asdict(report), "shares": report.shares}, indent=2, ensure_ascii=False))
        return 0
    shares = {k: "n/a" if v is None else f"{v:.1%}" for k, v in report.shares.items()}
    print(f"{report.questions} questions: {report.answerable} answerable, {report.unanswerable} not")
    print(f"  answered with an expected string in a quote: {report.answered_with_expected}/"
          f"{report.answerable} = {shares['answered_with_expected']}")
    print(f"  unanswerable refused: {report.refused}/{report.unanswerable} = {shares['refused_when_unanswerable']}")
    print(f"  quotes exactly as in their document: {report.quotes_verified}/{report.quotes} = "
          f"{shares['quotes_verified']}")
    for miss in report.misses:
        print(f"  - {miss['problem']}: {miss['question']}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from .llm import local_model
    from .web import serve

    with local_model(_settings(args)) as settings:
        return serve(settings, host=args.host, port=args.port, auth=args.auth, follow_corpus=args.watch,
                     allow_no_login=args.allow_no_login)


THREADS_HELP = ("encoder threads for indexing: a number, or auto for one per physical core (RAG_THREADS; "
                "also --llm-gguf's server, 1 when auto); a question uses RAG_QUERY_THREADS")


def _count(value: str) -> int:
    """A whole number of 1 or more, checked before anything loads (a chat would fail each question)."""
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {count}")
    return count


def _threads(value: str) -> int:
    """``auto`` or a count; Settings reads 0 as auto."""
    if value == "auto":
        return 0
    try:
        return _count(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {value!r}") from None


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--index", metavar="DIR", help="index folder (default: index, or RAG_INDEX_DIR)")
    common.add_argument("--model", help="sentence-transformers model name or local path (RAG_MODEL)")
    common.add_argument("--threads", type=_threads, help=THREADS_HELP)
    common.add_argument("--backend", choices=["auto", "torch", "openvino"],
                        help="encoder backend (default auto: OpenVINO where installed; RAG_BACKEND)")
    common.add_argument("--index-backend", choices=["local", "milvus"],
                        help="where the index lives (default: local, or RAG_INDEX_BACKEND)")

    answering = argparse.ArgumentParser(add_help=False)
    answering.add_argument("--llm-gguf", metavar="FILE.gguf",
                           help="answer with this local model: rag starts a llama.cpp server for it on "
                                "127.0.0.1 and stops it on exit (pip install rag[llm]; RAG_LLM_GGUF)")

    parser = argparse.ArgumentParser(
        prog="rag", description="Offline question answering over your articles, with verified quotes."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", parents=[common], help="build or update the index")
    index.add_argument("--corpus", metavar="DIR", help="folder of articles (default: corpus, or RAG_CORPUS_DIR)")
    index.add_argument("--full", action="store_true", help="rebuild from scratch")
    index.add_argument("--watch", action="store_true", help="keep updating as files change")
    index.add_argument("--ray", metavar="ADDRESS",
                       help="embed on a Ray cluster: its address, or auto (the one this machine "
                            "joined with ray start); see docs/scale-out.md")
    index.set_defaults(run=_cmd_index)

    search = commands.add_parser("search", parents=[common], help="show the best passages")
    search.add_argument("query")
    search.add_argument("-k", type=_count, default=5, help="number of results (default 5)")
    search.add_argument("--mode", choices=["hybrid", "dense", "lexical"], help="default: hybrid, or RAG_MODE")
    search.add_argument("--unit", choices=["passage", "document"], default="passage",
                        help="rank passages, or documents each shown by its best passage (k counts documents)")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(run=_cmd_search)

    ask = commands.add_parser("ask", parents=[common, answering], help="answer a question with quotes")
    ask.add_argument("question")
    ask.add_argument("-k", type=_count, help="passages to read (default 5)")
    ask.add_argument("--json", action="store_true", help="print JSON")
    ask.set_defaults(run=_cmd_ask)

    chat = commands.add_parser("chat", parents=[common, answering], help="a conversation in the terminal")
    chat.add_argument("-k", type=_count, help="passages to read per question (default 5)")
    chat.set_defaults(run=_cmd_chat)

    evaluate = commands.add_parser(
        "eval", help="score retrieval on a BEIR-format dataset (--beir) or answers to your own "
                     "questions (--answers)"
    )
    evaluate.add_argument("--beir", metavar="DIR",
                          help="folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
    evaluate.add_argument("--answers", metavar="FILE.jsonl",
                          help="score answers to your own questions against the index (--index)")
    evaluate.add_argument("--index", metavar="DIR", help="index for --answers (default: index, or RAG_INDEX_DIR)")
    evaluate.add_argument("--split", help="qrels split (default: test if present, else train)")
    evaluate.add_argument("--mode", choices=["hybrid", "dense", "lexical"], help="default: hybrid, or RAG_MODE")
    evaluate.add_argument("--model", help="sentence-transformers model name or local path (RAG_MODEL)")
    evaluate.add_argument("--threads", type=_threads, help=THREADS_HELP)
    evaluate.add_argument("--backend", choices=["auto", "torch", "openvino"],
                          help="encoder backend (default auto: OpenVINO where installed; RAG_BACKEND)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=_cmd_eval)

    serve = commands.add_parser("serve", parents=[common, answering], help="open the web chat")
    serve.add_argument("--corpus", metavar="DIR", help="folder of articles (default: corpus, or RAG_CORPUS_DIR)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    serve.add_argument("--auth", metavar="USER:PASSWORD",
                       help="require this login (better: set RAG_AUTH, which ps cannot show)")
    serve.add_argument("--watch", action="store_true",
                       help="also update the index when files in the corpus folder change")
    serve.add_argument("--allow-no-login", action="store_true",
                       help="serve a non-local address without a login (anyone who reaches it can change the corpus)")
    serve.set_defaults(run=_cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (RagError, ValueError) as e:
        print(f"rag: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = "; the index is as it was before this build" if args.command == "index" else ""
        print(f"rag: interrupted{kept}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (`rag search ... | head`): nothing more to say, and no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
