"""Files → Documents: find indexable files in the corpus and turn each into the text a reader sees.

The text a loader returns is what citations quote and what chunk offsets point into. Each format
lives in :mod:`rag.ingest` and renders its file the way it reads (PDF lines joined into paragraphs,
Markdown without its markup, a web page's article without its navigation); text is NFC-normalised,
and ``Document.source_map`` leads back to the file for display.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from .ingest.builder import BuiltText, TextBuilder
from .ingest.encoding import decode_text
from .ingest.epub import load_epub
from .ingest.html import load_html
from .ingest.markdown import load_markdown
from .ingest.office import load_docx, load_odt, load_pptx
from .ingest.pdf import load_pdf
from .text import normalize
from .types import Document, LoadError, RagError

_Reader = Callable[[bytes], tuple[BuiltText, "str | None"]]


def _load_plain(data: bytes) -> tuple[BuiltText, None]:
    builder = TextBuilder()
    text = decode_text(data)
    builder.part("", text)
    builder.add(text, 0)
    return builder.build(), None


def _load_markdown(data: bytes) -> tuple[BuiltText, "str | None"]:
    return load_markdown(decode_text(data))


_READERS: dict[str, _Reader] = {
    ".txt": _load_plain, ".md": _load_markdown, ".markdown": _load_markdown,
    ".html": load_html, ".htm": load_html, ".xhtml": load_html, ".pdf": load_pdf,
    ".docx": load_docx, ".odt": load_odt, ".pptx": load_pptx, ".epub": load_epub,
}
SUPPORTED_SUFFIXES = set(_READERS)
_CONVERT_ADVICE = {
    ".doc": "old Word format: save it as .docx or PDF",
    ".rtf": "save it as .docx or PDF",
    ".pages": "export it as .docx or PDF",
    ".ppt": "old PowerPoint format: save it as .pptx or PDF",
    ".key": "export it as .pptx or PDF",
    ".odp": "save it as .pptx or PDF",
    ".xls": "spreadsheets are not read: save the text as PDF or .docx",
    ".xlsx": "spreadsheets are not read: save the text as PDF or .docx",
    ".ods": "spreadsheets are not read: save the text as PDF or .docx",
    ".csv": "tables are not read: save the text as .txt",
    ".mobi": "convert the e-book to .epub",
    ".azw": "convert the e-book to .epub",
    ".azw3": "convert the e-book to .epub",
    ".djvu": "convert it to PDF with a text layer",
    ".png": "an image has no text to read: run OCR and save it as PDF with text",
    ".jpg": "an image has no text to read: run OCR and save it as PDF with text",
    ".jpeg": "an image has no text to read: run OCR and save it as PDF with text",
    ".tif": "an image has no text to read: run OCR and save it as PDF with text",
    ".tiff": "an image has no text to read: run OCR and save it as PDF with text",
    ".rst": "rename it .txt",
    ".text": "rename it .txt",
}
#: Where removed documents wait inside the corpus folder (rag.api.remove_document); never indexed.
TRASH_FOLDER = ".rag-trash"
_MAX_TITLE_CHARS = 120
_FULL_STOP_END = re.compile(r"(?<!\.)\.[\"'”’)\]]*$")  # "… the end." but not "Wait..."
_HASH_BLOCK_BYTES = 1 << 20
_NO_TEXT = {".html": "no visible text", ".htm": "no visible text", ".xhtml": "no visible text"}


# ---------------------------------------------------------------- finding files


def find_files(
    corpus_dir: Path, *, max_file_mb: float = 50.0
) -> tuple[list[tuple[str, Path]], list[tuple[str, str]]]:
    """Recursively list indexable files: ([(doc_id, path)], skipped [(doc_id_or_path, reason)]).

    ``doc_id`` is the POSIX path relative to ``corpus_dir``; both lists are sorted by it.
    Symlinks are never followed out of the corpus, and symlinked directories are never
    descended (that is how link loops and duplicate copies are avoided).
    """
    root = Path(corpus_dir)
    if not root.is_dir():
        raise RagError(f"corpus directory not found: {root}")
    root_real = root.resolve()
    prefix = len(os.path.join(os.fspath(root), ""))  # doc_id = entry.path[prefix:]: no Path per entry
    max_bytes = max_file_mb * 1024 * 1024
    found: list[tuple[str, Path]] = []
    skipped: list[tuple[str, str]] = []
    pending = [os.fspath(root)]  # a stack, not recursion: corpus depth is not bounded by us
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as e:
            skipped.append((_doc_id(directory[prefix:]), f"unreadable directory: {_os_reason(e)}"))
            continue
        for entry in entries:
            doc_id = _doc_id(entry.path[prefix:])
            if doc_id == TRASH_FOLDER:
                continue  # rag's own trash of removed documents: not the user's file to report
            reason = _skip_reason(entry, root_real, max_bytes)
            if reason is not None:
                skipped.append((doc_id, reason))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            else:
                found.append((doc_id, Path(entry.path)))
    return sorted(found), sorted(skipped)


def _doc_id(relative: str) -> str:
    """The POSIX form of a path relative to the corpus ("." for the corpus itself)."""
    return (relative.replace(os.sep, "/") if os.sep != "/" else relative) or "."


def _skip_reason(entry: os.DirEntry, root_real: Path, max_bytes: float) -> str | None:
    """Why ``entry`` is not indexed (or descended into), or None if it is."""
    if entry.name.startswith("."):
        return "hidden directory" if entry.is_dir(follow_symlinks=False) else "hidden file"
    if entry.is_symlink():
        try:
            target = Path(entry.path).resolve(strict=True)
        except (OSError, RuntimeError):  # RuntimeError: symlink loop on older Pythons
            return "broken symlink"
        if not target.is_relative_to(root_real):
            return "symlink to outside the corpus (not followed)"
        if target.is_dir():
            return "symlinked directory (not followed; its target is indexed directly)"
    try:
        info = entry.stat(follow_symlinks=True)
    except OSError as e:
        return f"unreadable: {_os_reason(e)}"
    if stat.S_ISDIR(info.st_mode):
        return None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if os.path.splitext(entry.name)[1].lower() not in SUPPORTED_SUFFIXES:
        return unsupported_reason(Path(entry.path))
    if info.st_size > max_bytes:
        return f"file too large ({info.st_size / 1048576:.1f} MB > {max_bytes / 1048576:g} MB limit)"
    return None


def unsupported_reason(path: Path) -> str:
    """Why a file of this type is not read, and what to do about it."""
    suffix = path.suffix.lower()
    if not suffix:
        return "unsupported file type (no extension); name it .txt if it is plain text"
    advice = _CONVERT_ADVICE.get(suffix, "save it as PDF, .docx or .txt")
    return f"unsupported file type '{path.suffix}'; {advice}"


def file_hash(path: Path) -> str:
    """SHA-256 hex digest of the file's bytes, read in blocks so large files stay cheap."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- loading one file


def load_document(path: Path, doc_id: str, content_hash: str | None = None) -> Document:
    """Parse one file into a Document, or raise LoadError with a one-line reason."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise LoadError(unsupported_reason(path))
    data = _read_bytes(path)
    if not data.strip():
        raise LoadError("empty file")
    if content_hash is None:
        content_hash = hashlib.sha256(data).hexdigest()
    built, title = _READERS[suffix](data)
    if not built.text.strip():
        raise LoadError(_NO_TEXT.get(suffix, "empty file" if suffix in (".txt", ".md", ".markdown")
                                     else "no text in it"))
    title = normalize(_one_line(title or "") or _first_line_title(built.text) or path.stem)
    return Document(doc_id=doc_id, title=title, text=built.text, content_hash=content_hash,
                    page_starts=built.page_starts, sections=built.sections, source_map=built.source_map)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise LoadError("file disappeared before it could be read") from None
    except IsADirectoryError:
        raise LoadError("is a directory, not a file") from None
    except OSError as e:
        raise LoadError(f"unreadable: {_os_reason(e)}") from None


def _os_reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _first_line_title(text: str) -> str | None:
    """The first non-empty line, if it reads as a title: short, and not a sentence ended by a full
    stop (a document that opens with its text has no title line; its file name serves)."""
    for line in text.split("\n"):
        if line.strip():
            title = _one_line(line)
            return title if len(title) <= _MAX_TITLE_CHARS and not _FULL_STOP_END.search(title) else None
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
