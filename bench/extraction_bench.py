"""Extraction against the known source text: this branch's loaders beside main's, in one run.

Documents are generated from the squad-dev articles (Wikipedia prose, ../shared/eval/squad-dev)
with the tools people make them with (tests/documents.py): typeset PDFs (running header, "Page N"
footers, hyphenated line ends; one and two columns), Word, EPUB, hard-wrapped Markdown with
emphasis and links, and news pages with navigation, cookie banner, share buttons, related links,
newsletter box and footer in three layouts. Measured:

- sentences recovered intact: share of the source's sentences that are an exact substring of the
  loaded text (what a quote must be), per format;
- boilerplate excluded (HTML): share of boilerplate words whose block does not appear in the text;
- placed in the file: share of the intact sentences whose every letter and digit the source map
  places, each run verbatim in the file's own part as read straight from the file
  (tests/documents.py ``file_places``: pypdf page text, python-docx paragraph, zip member …);
- legacy encodings read correctly (cp1251, GBK, Shift-JIS, cp1253, cp1252);
- a long text file read and chunked as a build does (child, then chunker), CPU seconds of both.

    python bench/extraction_bench.py [--articles 16] [--paragraphs 30] [--baseline main]
                                     [--long-mb 8]

The baseline is ``git archive <ref> rag`` unpacked into a temporary folder and run in a child
process, so both sides read the very same files.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTICLES = REPO.parent / "shared" / "eval" / "squad-dev" / "articles"
sys.path.insert(0, str(REPO))

LEGACY = [
    ("cp1251", "Привет, мир! Это проверка кодировки текста, написанного в старой кодировке Windows."),
    ("gbk", "中文测试文本。这是一个用旧编码保存的简单句子，用来检查读取是否正确。"),
    ("shift_jis", "日本語のテキストです。これは古いエンコーディングで保存された簡単な文です。"),
    ("cp1253", "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μία από τις αρχαιότερες πόλεις του κόσμου."),
    ("cp1252", "“Quoted” – the café’s crème brûlée costs €5, naïvely."),
]


def articles(count: int, paragraphs: int) -> list[tuple[str, list[tuple[str, str]]]]:
    found = []
    for path in sorted(ARTICLES.glob("*.txt"))[:count]:
        title, _, body = path.read_text(encoding="utf-8").partition("\n\n")
        blocks = []
        for number, paragraph in enumerate(p.strip() for p in body.split("\n\n") if p.strip()):
            if number >= paragraphs:
                break
            if number % 4 == 0:
                blocks.append(("h", f"Part {number // 4 + 1}"))
            blocks.append(("p", " ".join(paragraph.split())))
        found.append((title.strip(), blocks))
    return found


def markdown_of(title: str, blocks) -> str:
    """Markdown as people write it: hard-wrapped at 72 columns, some emphasis and links."""
    lines = [f"# {title}", ""]
    for kind, text in blocks:
        if kind == "h":
            lines += [f"## {text}", ""]
            continue
        words = text.split()
        for i in range(3, len(words), 11):  # emphasis and a link every few words
            words[i] = f"**{words[i]}**" if i % 2 else f"[{words[i]}](https://example.org/{i})"
        lines += [*textwrap.wrap(" ".join(words), 72, break_on_hyphens=False), ""]
    return "\n".join(lines)


def generate(folder: Path, count: int, paragraphs: int) -> dict:
    """Write every document; return what each holds: its sentences, and for pages, boilerplate."""
    from rag.chunking import split_sentences
    from tests import documents

    manifest = {"files": [], "legacy": []}
    for number, (title, blocks) in enumerate(articles(count, paragraphs)):
        sentences = [text[a:b] for kind, text in blocks if kind == "p" for a, b in split_sentences(text)]
        latin = [b for b in blocks if all(ord(c) < 256 for c in b[1])]
        latin_sentences = [text[a:b] for kind, text in latin if kind == "p" for a, b in split_sentences(text)]
        files = {
            f"a{number}-1col.pdf": (lambda p: documents.write_typeset_pdf(p, title, latin), latin_sentences, "pdf 1 column"),
            f"a{number}-2col.pdf": (lambda p: documents.write_typeset_pdf(p, title, latin, columns=2), latin_sentences, "pdf 2 columns"),
            f"a{number}.docx": (lambda p: documents.write_docx(p, title, blocks), sentences, "docx"),
            f"a{number}.epub": (lambda p: documents.write_epub(p, title, blocks, chapters=3), sentences, "epub"),
            f"a{number}.odt": (lambda p: documents.write_odt(p, title, blocks), sentences, "odt"),
            f"a{number}.md": (lambda p: p.write_text(markdown_of(title, blocks), encoding="utf-8"), sentences, "markdown"),
        }
        for layout in range(3):
            files[f"a{number}-layout{layout}.html"] = (
                lambda p, layout=layout: p.write_text(documents.news_page(title, "The River Times", blocks, layout=layout),
                                                      encoding="utf-8"), sentences, "html")
        for name, (write, expected, kind) in files.items():
            write(folder / name)
            manifest["files"].append({"name": name, "kind": kind, "sentences": expected})
    manifest["boilerplate"] = list(documents.BOILERPLATE.values())
    for number, (encoding, text) in enumerate(LEGACY):
        name = f"legacy-{number}-{encoding}.txt"
        (folder / name).write_bytes(text.encode(encoding))
        manifest["legacy"].append({"name": name, "encoding": encoding, "text": text})
    return manifest


def measure(folder: Path, manifest: dict) -> dict:
    """Load every file with whichever ``rag`` is first on sys.path; score it."""
    from rag.loaders import load_document
    from rag.types import LoadError

    warmed = set()
    for entry in manifest["files"]:  # imports and first-call set-up are not what is timed
        if entry["kind"] not in warmed:
            warmed.add(entry["kind"])
            try:
                load_document(folder / entry["name"], entry["name"])
            except LoadError:
                pass
    by_kind: dict[str, dict] = {}
    for entry in manifest["files"]:
        stats = by_kind.setdefault(entry["kind"], {"files": 0, "read": 0, "sentences": 0, "intact": 0,
                                                   "placed": None, "boilerplate_words": 0,
                                                   "boilerplate_excluded": 0, "seconds": 0.0, "cpu_seconds": 0.0})
        stats["files"] += 1
        started, cpu_started = time.perf_counter(), time.process_time()
        try:
            document = load_document(folder / entry["name"], entry["name"])
            text = document.text
            stats["read"] += 1
        except LoadError:
            document, text = None, ""
        stats["seconds"] += time.perf_counter() - started
        stats["cpu_seconds"] += time.process_time() - cpu_started
        stats["sentences"] += len(entry["sentences"])
        intact = [sentence for sentence in entry["sentences"] if sentence in text]
        stats["intact"] += len(intact)
        if document is not None and hasattr(document.source_map, "spans"):  # main before source maps: none
            stats["placed"] = (stats["placed"] or 0) + _placed(document, intact, folder / entry["name"])
        if entry["kind"] == "html":
            flat = " ".join(text.split())
            for block in manifest["boilerplate"]:
                words = len(block.split())
                stats["boilerplate_words"] += words
                stats["boilerplate_excluded"] += words * (not _block_present(block, flat))
    legacy = 0
    for entry in manifest["legacy"]:
        try:
            legacy += load_document(folder / entry["name"], entry["name"]).text == entry["text"]
        except LoadError:
            pass
    return {"kinds": by_kind, "legacy_correct": legacy, "legacy_total": len(manifest["legacy"]),
            "chunking_s": _chunking_seconds(manifest.get("chunking_chars", 0)),
            "long_text": _long_text(folder, manifest.get("long_chars", 0))}


def _placed(document, sentences: list[str], path: Path) -> int:
    """How many of ``sentences`` (each in the text) the source map places wholly and verbatim."""
    from tests.documents import file_places

    places = file_places(path)
    placed = 0
    for sentence in sentences:
        start = document.text.index(sentence)
        spans = document.source_map.spans(start, start + len(sentence))
        verbatim = all(places.get(part, "")[a:b] == document.text[c:d] for part, a, b, c, d in spans)
        covered = {i for *_, c, d in spans for i in range(c, d)}
        whole = all(i in covered for i in range(start, start + len(sentence)) if document.text[i].isalnum())
        placed += verbatim and whole
    return placed


def _long_text(folder: Path, characters: int) -> dict | None:
    """A text file of ``characters`` of prose read by the sandboxed child and chunked with the
    model's tokenizer under the configured limits, as a build does: the outcome and CPU seconds
    (this process and the child)."""
    if not characters:
        return None
    import inspect
    import random
    import resource

    from rag.chunking import chunk_document
    from rag.config import load_settings
    from rag.embedding import embedder_for
    from rag.guard import GuardedLoader
    from rag.types import LoadError

    settings = load_settings()
    embedder = embedder_for(settings)
    vocabulary = ["river", "stone", "light", "delta", "omega", "harbour", "signal", "north", "winter"]
    rng = random.Random(11)
    words = rng.choices(vocabulary, k=characters // 6)
    for i in range(12, len(words), 14):
        words[i] += "."
    path = folder / "long.txt"
    path.write_text(" ".join(words)[:characters], encoding="utf-8")
    limits = {"max_document_tokens": settings.max_document_tokens} if "max_document_tokens" in (
        inspect.signature(chunk_document).parameters) else {}
    extra = [settings.max_document_tokens] if limits else []
    started, cpu = time.perf_counter(), time.process_time()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        with GuardedLoader(settings.parse_timeout_s * 10, settings.parse_memory_mb, settings.max_file_mb,
                           *extra) as reader:
            document = reader.load(path, "long.txt")
        chunks = chunk_document(document, max_tokens=128, overlap_sentences=1,
                                count_tokens=embedder.count_tokens, **limits)
        outcome = f"{len(chunks):,} chunks"
    except LoadError as e:
        outcome = f"skipped: {e}"
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return {"outcome": outcome, "cpu_s": time.process_time() - cpu + child_cpu,
            "wall_s": time.perf_counter() - started}


def _chunking_seconds(characters: int) -> float | None:
    """Seconds to chunk ``characters`` of text without a full stop, counting with the model's
    tokenizer (what the indexer does after a file is read)."""
    if not characters:
        return None
    import random

    from rag.chunking import chunk_document
    from rag.config import load_settings
    from rag.embedding import embedder_for
    from rag.types import Document

    embedder = embedder_for(load_settings())
    words = random.Random(7).choices(["river", "stone", "light", "delta", "omega", "harbour", "signal"], k=characters // 6)
    text = " ".join(words)[:characters]
    started = time.perf_counter()
    chunk_document(Document("x", "x", text, "x"), max_tokens=128, overlap_sentences=1,
                   count_tokens=embedder.count_tokens)
    return time.perf_counter() - started


def _block_present(block: str, flat_text: str) -> bool:
    """A boilerplate block counts as present if a third or more of its words survive in a run."""
    words = block.split()
    window = max(3, len(words) // 3)
    return any(" ".join(words[i:i + window]) in flat_text for i in range(len(words) - window + 1))


def baseline(ref: str, folder: Path, manifest_path: Path) -> dict:
    with tempfile.TemporaryDirectory() as root:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "rag"], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", root], input=archive, check=True)
        code = (f"import json, sys; sys.path.insert(0, {str(REPO)!r})\n"
                "from bench.extraction_bench import measure\n"  # imports no rag module yet
                f"sys.path.insert(0, {root!r})\n"
                "import rag; assert rag.__file__.startswith(sys.path[0]), rag.__file__\n"
                f"print(json.dumps(measure(__import__('pathlib').Path({str(folder)!r}), "
                f"json.load(open({str(manifest_path)!r})))))\n")
        env = dict(os.environ, PYTHONPATH="", HF_HUB_OFFLINE="1")
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env,
                             cwd=root).stdout
        return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=16)
    parser.add_argument("--paragraphs", type=int, default=30)
    parser.add_argument("--baseline", default="main", help="git ref to compare with")
    parser.add_argument("--chunking-mb", type=float, default=2.0,
                        help="also time chunking this many MB of unpunctuated text (0: skip)")
    parser.add_argument("--long-mb", type=float, default=8.0,
                        help="also read and chunk a text file of this many MB as a build does (0: skip)")
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        manifest = generate(folder, options.articles, options.paragraphs)
        manifest["chunking_chars"] = int(options.chunking_mb * 1_000_000)
        manifest["long_chars"] = int(options.long_mb * 1_000_000)
        manifest_path = folder / "manifest.json"
        manifest_path.write_text(json.dumps(manifest))
        ours = measure(folder, manifest)
        theirs = baseline(options.baseline, folder, manifest_path)
    load = os.getloadavg()[0]
    print(f"{len(manifest['files'])} files from {options.articles} articles; load average {load:.2f}, 1 thread\n")
    print(f"| format | files | sentences | intact, {options.baseline} | intact, this branch | "
          f"placed in the file, {options.baseline} | placed in the file, this branch | "
          f"boilerplate excluded, {options.baseline} | boilerplate excluded, this branch | "
          f"CPU ms per file, {options.baseline} / this branch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for kind, stats in ours["kinds"].items():
        base = theirs["kinds"][kind]
        boiler = (lambda s: f"{s['boilerplate_excluded'] / s['boilerplate_words']:.1%}"
                  if s["boilerplate_words"] else "–")
        placed = (lambda s: f"{s['placed'] / s['intact']:.1%}" if s.get("placed") is not None and s["intact"]
                  else "–")
        cpu = (lambda s: 1000 * s.get("cpu_seconds", s["seconds"]) / s["files"])
        ratio = f"{cpu(base):.1f} / {cpu(stats):.1f}" if base["read"] else f"not read / {cpu(stats):.1f}"
        print(f"| {kind} | {stats['files']} | {stats['sentences']} | {base['intact'] / base['sentences']:.1%} | "
              f"{stats['intact'] / stats['sentences']:.1%} | {placed(base)} | {placed(stats)} | "
              f"{boiler(base)} | {boiler(stats)} | {ratio} |")
    print(f"\nlegacy encodings read correctly: {options.baseline} {theirs['legacy_correct']}/{theirs['legacy_total']}, "
          f"this branch {ours['legacy_correct']}/{ours['legacy_total']}")
    if ours["chunking_s"] is not None:
        print(f"chunking {options.chunking_mb:g} MB without a full stop: {options.baseline} {theirs['chunking_s']:.1f} s, "
              f"this branch {ours['chunking_s']:.1f} s ({theirs['chunking_s'] / ours['chunking_s']:.1f} × faster)")
    if ours["long_text"] is not None:
        for label, long_text in ((options.baseline, theirs.get("long_text")), ("this branch", ours["long_text"])):
            if long_text:
                print(f"{options.long_mb:g} MB text file read and chunked, {label}: {long_text['outcome']}; "
                      f"{long_text['cpu_s']:.1f} s CPU, {long_text['wall_s']:.1f} s wall")


if __name__ == "__main__":
    main()
