"""Files → Documents: find indexable files in the corpus and turn each into plain text.

The text a loader returns is what citations quote and what chunk offsets point into, so loaders
only decode and extract; they never paraphrase or reflow the source beyond tidying whitespace
that a reader cannot see (HTML) and unifying newlines.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path

from .types import Document, LoadError, RagError

SUPPORTED_SUFFIXES = {".txt", ".md", ".markdown", ".pdf", ".html", ".htm"}

_MAX_TITLE_CHARS = 120
_HASH_BLOCK_BYTES = 1 << 20
# Bytes that identify a UTF-16 text file; without one, NUL bytes mean binary data.
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Control characters other than \t \n \v \f \r; text has few, binary data has many.
_CONTROL_CHAR = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_CHAR_RATIO = 0.01
_PAGE_SEPARATOR = "\n\n"
_WHITESPACE_RUN = re.compile(r"\s+")


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
    max_bytes = max_file_mb * 1024 * 1024
    found: list[tuple[str, Path]] = []
    skipped: list[tuple[str, str]] = []
    pending = [root]  # a stack, not recursion: corpus depth is not bounded by us
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError as e:
            skipped.append((_doc_id(root, Path(directory)), f"unreadable directory: {_os_reason(e)}"))
            continue
        for entry in entries:
            path = Path(entry.path)
            doc_id = _doc_id(root, path)
            reason = _skip_reason(entry, path, root_real, max_bytes)
            if reason is not None:
                skipped.append((doc_id, reason))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(path)
            else:
                found.append((doc_id, path))
    return sorted(found), sorted(skipped)


def _doc_id(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _skip_reason(entry: os.DirEntry, path: Path, root_real: Path, max_bytes: float) -> str | None:
    """Why ``entry`` is not indexed (or descended into), or None if it is."""
    if entry.name.startswith("."):
        return "hidden directory" if entry.is_dir(follow_symlinks=False) else "hidden file"
    if entry.is_symlink():
        try:
            target = path.resolve(strict=True)
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
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        return _unsupported(path)
    if info.st_size > max_bytes:
        return f"file too large ({info.st_size / 1048576:.1f} MB > {max_bytes / 1048576:g} MB limit)"
    return None


def _unsupported(path: Path) -> str:
    return f"unsupported file type '{path.suffix}'" if path.suffix else "unsupported file type (no extension)"


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
    if suffix not in SUPPORTED_SUFFIXES:
        raise LoadError(_unsupported(path))
    data = _read_bytes(path)
    if not data.strip():
        raise LoadError("empty file")
    if content_hash is None:
        content_hash = hashlib.sha256(data).hexdigest()

    page_starts: tuple[int, ...] = ()
    if suffix == ".pdf":
        text, page_starts, title = _load_pdf(data)
    elif suffix in (".html", ".htm"):
        text, title = _load_html(data)
    else:
        text = _decode_text(data)
        title = _markdown_title(text) if suffix in (".md", ".markdown") else None
    if not text.strip():
        raise LoadError("no visible text" if suffix in (".html", ".htm") else "empty file")
    title = _one_line(title or "") or _first_line_title(text) or path.stem
    return Document(doc_id=doc_id, title=title, text=text, content_hash=content_hash,
                    page_starts=page_starts)


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


# ---------------------------------------------------------------- plain text and Markdown


def _decode_text(data: bytes, declared_encoding: str | None = None) -> str:
    """Decode bytes that should be text: UTF-8 (BOM or not), then a declared encoding, then
    cp1252/latin-1 — but only if the result looks like text, else LoadError."""
    text = None
    if data.startswith(_UTF16_BOMS):
        text = _try_decode(data, "utf-16")
    elif b"\x00" not in data:
        for encoding in ("utf-8-sig", declared_encoding, "cp1252", "latin-1"):
            if encoding and (text := _try_decode(data, encoding)) is not None:
                break
    if text is None or _looks_binary(text):
        raise LoadError("not text: binary data")
    return _normalise_newlines(text)


def _try_decode(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def _looks_binary(text: str) -> bool:
    if "\x00" in text:
        return True
    allowed = max(1, int(_MAX_CONTROL_CHAR_RATIO * len(text)))
    for count, _ in enumerate(_CONTROL_CHAR.finditer(text), start=1):
        if count > allowed:  # stop early: binary files can be large
            return True
    return False


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


_ATX_H1 = re.compile(r"#[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")
_CODE_FENCE = re.compile(r"(```|~~~)")
_HEADING_MARKER = re.compile(r"^#+\s+")


def _markdown_title(text: str) -> str | None:
    """The first level-1 ``# heading`` outside fenced code blocks (where '#' is a comment)."""
    in_fence = False
    for line in text.split("\n"):
        stripped = line.strip()
        if _CODE_FENCE.match(stripped):
            in_fence = not in_fence
        elif not in_fence and (m := _ATX_H1.fullmatch(stripped)):
            return m.group(1)
    return None


def _first_line_title(text: str) -> str | None:
    """The first non-empty line, if it is short enough to read as a title."""
    for line in text.split("\n"):
        if line.strip():
            title = _one_line(_HEADING_MARKER.sub("", line.strip()))
            return title if len(title) <= _MAX_TITLE_CHARS else None
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- PDF


def _load_pdf(data: bytes) -> tuple[str, tuple[int, ...], str | None]:
    """Text per page joined by a blank line ("\\n\\n"); page_starts[i] is where page i+1 begins."""
    if b"%PDF-" not in data[:1024]:
        raise LoadError("malformed PDF: no %PDF header")
    if b"%%EOF" not in data[-2048:]:
        raise LoadError("malformed PDF: truncated (no %%EOF marker at the end)")
    import pypdf  # deferred: only PDF corpora pay for the import

    with _quiet_pypdf():
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise LoadError("PDF is encrypted")
            pages = [_normalise_newlines(page.extract_text() or "").strip() for page in reader.pages]
            title = _pdf_title(reader)
        except LoadError:
            raise
        except pypdf.errors.FileNotDecryptedError:
            raise LoadError("PDF is encrypted") from None
        except pypdf.errors.DependencyError as e:
            raise LoadError(f"PDF is encrypted and cannot be decrypted here: {_first_line(e)}") from None
        except Exception as e:  # pypdf raises many unrelated types on damaged files
            raise LoadError(f"malformed PDF: {_first_line(e)}") from None
    if not any(pages):
        raise LoadError("no extractable text (scanned PDF?)")
    starts, offset = [], 0
    for page_text in pages:
        starts.append(offset)
        offset += len(page_text) + len(_PAGE_SEPARATOR)
    return _PAGE_SEPARATOR.join(pages), tuple(starts), title


def _pdf_title(reader) -> str | None:
    try:
        metadata = reader.metadata
        return str(metadata.title) if metadata and metadata.title else None
    except Exception:  # a broken /Info dictionary should not cost us the text
        return None


@contextmanager
def _quiet_pypdf() -> Iterator[None]:
    """Silence pypdf's warnings and log records about damaged files; our LoadError says it all."""
    logger = logging.getLogger("pypdf")  # its modules log to child loggers, which inherit this level
    previous_level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(previous_level)


def _first_line(error: Exception) -> str:
    message = str(error).strip().split("\n", 1)[0]
    return message or type(error).__name__


# ---------------------------------------------------------------- HTML


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)""", re.IGNORECASE)


def _load_html(data: bytes) -> tuple[str, str | None]:
    declared = _META_CHARSET.search(data[:4096])
    text = _decode_text(data, declared.group(1).decode("ascii") if declared else None)
    extractor = _VisibleTextExtractor()
    try:
        extractor.feed(text)
        extractor.close()
    except (AssertionError, ValueError) as e:  # html.parser's rare hard failures
        raise LoadError(f"malformed HTML: {_first_line(e)}") from None
    return extractor.text(), extractor.title()


class _VisibleTextExtractor(HTMLParser):
    """Streams the text a browser would show; keeps no tree, so nesting depth costs nothing."""

    _HIDDEN = frozenset({"script", "style", "noscript", "template", "title"})
    _PARAGRAPH = frozenset({
        "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl",
        "section", "article", "header", "footer", "nav", "aside", "main", "figure", "form",
        "fieldset", "address", "details", "hr",
    })
    _LINE = frozenset({
        "br", "div", "li", "dt", "dd", "tr", "caption", "figcaption", "summary", "legend",
        "option", "body", "html",
    })
    _CELL = frozenset({"td", "th"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._pending_newlines = 0  # adjacent block edges merge into the widest break
        self._hidden_open: dict[str, int] = {}
        self._pre_depth = 0
        self._title_parts: list[str] = []
        self._h1_parts: list[str] = []
        self._h1_state = "before"  # the first <h1> is the fallback title: before, inside, after

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in self._HIDDEN:
            self._hidden_open[tag] = self._hidden_open.get(tag, 0) + 1
        elif tag == "h1" and self._h1_state == "before":
            self._h1_state = "inside"
        if tag == "pre":
            self._pre_depth += 1
        self._break_for(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._hidden_open.get(tag):
            self._hidden_open[tag] -= 1
        elif tag == "h1" and self._h1_state == "inside":
            self._h1_state = "after"
        if tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
        self._break_for(tag)

    def handle_data(self, data: str) -> None:
        if self._hidden_open.get("title"):
            self._title_parts.append(data)
        if any(self._hidden_open.values()):
            return
        if self._h1_state == "inside":
            self._h1_parts.append(data)
        # Outside <pre>, source line breaks and indentation are just spaces to a reader.
        self._emit(data if self._pre_depth else _WHITESPACE_RUN.sub(" ", data))

    def _break_for(self, tag: str) -> None:
        if tag in self._PARAGRAPH:
            self._pending_newlines = 2
        elif tag in self._LINE:
            self._pending_newlines = max(self._pending_newlines, 1)
        elif tag in self._CELL:
            self._emit(" ")

    def _emit(self, text: str) -> None:
        if self._pending_newlines:
            if not text.strip():  # whitespace next to a block edge is invisible
                return
            self._parts.append("\n" * self._pending_newlines)
            self._pending_newlines = 0
        self._parts.append(text)

    def text(self) -> str:
        """Lines with runs of whitespace collapsed, at most one blank line in a row."""
        lines = [" ".join(line.split()) for line in _normalise_newlines("".join(self._parts)).split("\n")]
        tidy = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
        return tidy.strip()

    def title(self) -> str | None:
        for parts in (self._title_parts, self._h1_parts):
            if title := _one_line("".join(parts)):
                return title
        return None
