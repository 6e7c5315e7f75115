"""Loaders on real files of every supported kind, and on the broken ones a corpus really holds."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path

import pytest

from rag.loaders import SUPPORTED_SUFFIXES, TRASH_FOLDER, file_hash, find_files, load_document
from rag.types import LoadError, RagError


def load(path: Path):
    return load_document(path, path.name)


def load_error(path: Path) -> str:
    with pytest.raises(LoadError) as caught:
        load(path)
    return str(caught.value)


# ---------------------------------------------------------------- plain text and Markdown


def test_txt_keeps_text_verbatim_with_newlines_unified(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"Short title line\r\n\r\nFirst  sentence.\rSecond\tline.\n")
    doc = load(path)
    assert doc.text == "Short title line\n\nFirst  sentence.\nSecond\tline.\n"
    assert doc.title == "Short title line"
    assert doc.doc_id == "notes.txt"
    assert doc.page_starts == ()
    assert doc.page_at(3) is None


def test_a_first_line_ending_in_a_full_stop_is_text_not_a_title(tmp_path):
    path = tmp_path / "breakfast.txt"
    path.write_text("Café crème is served in Paris every morning.\nWith a croissant.\n", encoding="utf-8")
    assert load(path).title == "breakfast"
    for title in ("Why did Colombia cut ties?", "Notes, drafts and more..."):
        path.write_text(f"{title}\n\nThe text itself.\n", encoding="utf-8")
        assert load(path).title == title


def test_txt_title_falls_back_to_file_stem_when_first_line_is_long(tmp_path):
    path = tmp_path / "long-opening.txt"
    path.write_text("word " * 40 + "\nMore.", encoding="utf-8")
    assert load(path).title == "long-opening"


def test_utf8_bom_is_dropped(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffZürich café".encode("utf-8"))
    assert load(path).text == "Zürich café"


def test_utf16_with_bom_is_decoded(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_bytes("Grüße aus Köln.".encode("utf-16"))
    assert load(path).text == "Grüße aus Köln."


def test_latin1_file_is_decoded(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Un café crème, naïve façade.".encode("latin-1"))
    assert load(path).text == "Un café crème, naïve façade."


def test_cp1252_punctuation_is_decoded(tmp_path):
    path = tmp_path / "windows.txt"
    path.write_bytes("“Quoted” – and €5.".encode("cp1252"))
    assert load(path).text == "“Quoted” – and €5."


def test_markdown_title_is_first_h1_outside_code_fences(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(
        "Some intro text.\n\n```python\n# a comment, not a title\n```\n\n## Sub\n# Real Title #\nBody.\n",
        encoding="utf-8",
    )
    doc = load(path)
    assert doc.title == "Real Title"
    # Rendered: the fence markers and heading marks go, the code's own '#' stays.
    assert doc.text == "Some intro text.\n\n# a comment, not a title\n\nSub\n\nReal Title\n\nBody."
    assert doc.sections == ((44, "Sub"), (49, "Real Title"))


def test_markdown_without_h1_uses_first_line(tmp_path):
    path = tmp_path / "plain.markdown"
    path.write_text("## Setup steps\n\nRun it.\n", encoding="utf-8")
    assert load(path).title == "Setup steps"


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.html", "empty.pdf"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    assert load_error(path) == "empty file"


def test_whitespace_only_file_is_empty(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_text(" \n\t\r\n  \u3000\n", encoding="utf-8")
    assert load_error(path) == "empty file"


def test_binary_data_with_text_extension(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(bytes(range(256)) * 64)
    assert load_error(path) == "not text: binary data"


def test_nul_bytes_mean_binary(tmp_path):
    path = tmp_path / "nul.md"
    path.write_bytes(b"looks like text\x00but is not\x00")
    assert load_error(path) == "not text: binary data"


def test_many_control_characters_mean_binary(tmp_path):
    path = tmp_path / "controls.txt"
    path.write_bytes(b"abc\x01\x02\x03\x04def\x05\x06ghi\x07\x08" * 20)
    assert load_error(path) == "not text: binary data"


def test_unsupported_extension_is_refused(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    assert "unsupported file type '.csv'" in load_error(path)


def test_file_that_vanished_is_a_load_error(tmp_path):
    assert "disappeared" in load_error(tmp_path / "gone.txt")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_load_error(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("hidden", encoding="utf-8")
    path.chmod(0)
    assert "permission denied" in load_error(path)


# ---------------------------------------------------------------- HTML


def test_html_keeps_only_visible_text(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        """<!DOCTYPE html><html><head><title>Caf&eacute;s &amp; Bars</title>
        <style>body { color: red; }</style><script>var secret = "SCRIPT_TEXT";</script></head>
        <body><h1>Main heading</h1>
        <p>First   paragraph,
           wrapped in the source.<br>After a break&nbsp;here.</p>
        <!-- COMMENT_TEXT --><noscript>NOSCRIPT_TEXT</noscript><template>TEMPLATE_TEXT</template>
        <ul><li>one &lt;1&gt;</li><li>two</li></ul>
        <div>In<b>line</b> bold &#8212; <i>fine</i>.</div>
        <table><tr><td>cell a</td><td>cell b</td></tr></table></body></html>""",
        encoding="utf-8",
    )
    doc = load(path)
    assert doc.title == "Cafés & Bars"
    for hidden in ("SCRIPT_TEXT", "color: red", "COMMENT_TEXT", "NOSCRIPT_TEXT", "TEMPLATE_TEXT",
                   "Cafés & Bars", "<p>"):
        assert hidden not in doc.text
    assert doc.text == (
        "Main heading\n\n"
        "First paragraph, wrapped in the source.\nAfter a break here.\n\n"
        "one <1>\ntwo\n\n"
        "Inline bold — fine.\n\n"
        "cell a cell b"
    )


def test_html_title_falls_back_to_first_h1(tmp_path):
    path = tmp_path / "untitled.htm"
    path.write_text("<body><p>Intro</p><h1>The <em>Real</em>\n Title</h1><h1>Second</h1></body>",
                    encoding="utf-8")
    assert load(path).title == "The Real Title"


def test_html_declared_charset_is_used_when_not_utf8(tmp_path):
    path = tmp_path / "legacy.html"
    path.write_bytes('<meta charset="iso-8859-7"><p>Αθήνα</p>'.encode("iso-8859-7"))
    assert load(path).text == "Αθήνα"


def test_html_with_only_scripts_has_no_visible_text(tmp_path):
    path = tmp_path / "app.html"
    path.write_text("<html><script>render()</script></html>", encoding="utf-8")
    assert load_error(path) == "no visible text"


def test_deeply_nested_html_is_fast_and_does_not_recurse(tmp_path):
    path = tmp_path / "deep.html"
    depth = 50_000
    path.write_text("<div>" * depth + "Deep &amp; deeper." + "</div>" * depth, encoding="utf-8")
    started = time.perf_counter()
    doc = load(path)
    assert doc.text == "Deep & deeper."
    assert time.perf_counter() - started < 10


# ---------------------------------------------------------------- PDF


def test_pdf_text_per_page_with_page_starts_and_title(make_pdf):
    path = make_pdf("report.pdf", ["Alpha page text. Still page one.", "Beta page text on two."],
                    title="Quarterly Report")
    doc = load(path)
    assert doc.title == "Quarterly Report"
    assert len(doc.page_starts) == 2 and doc.page_starts[0] == 0
    first = doc.text[: doc.page_starts[1]]
    second = doc.text[doc.page_starts[1]:]
    assert "Alpha page text" in first and "Beta" not in first
    assert second.startswith("Beta page text on two.")
    assert doc.text == first.rstrip("\n") + "\n\n" + second
    assert doc.page_at(doc.text.index("Still")) == 1
    assert doc.page_at(doc.text.index("Beta")) == 2


def test_pdf_without_title_metadata_uses_first_line(make_pdf):
    doc = load(make_pdf("plain.pdf", ["Opening line", "Second page."]))
    assert doc.title == "Opening line"


def test_truncated_pdf(make_pdf, tmp_path):
    data = make_pdf("whole.pdf", ["Some text.", "More text."]).read_bytes()
    path = tmp_path / "truncated.pdf"
    path.write_bytes(data[: len(data) // 2])
    assert load_error(path) == "malformed PDF: truncated (no %%EOF marker at the end)"


def test_corrupted_pdf_is_a_load_error_and_quiet(make_pdf, tmp_path, capfd, caplog):
    data = make_pdf("whole.pdf", ["Some text.", "More text."]).read_bytes()
    path = tmp_path / "corrupted.pdf"
    path.write_bytes(data[:200] + b"\x00garbage" * 50 + data[600:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_error(path).startswith("malformed PDF")
    assert caught == []
    assert caplog.records == []
    assert capfd.readouterr() == ("", "")


def test_pdf_with_a_pdf_name_but_other_content(tmp_path):
    path = tmp_path / "fake.pdf"
    path.write_text("just some text", encoding="utf-8")
    assert load_error(path) == "malformed PDF: no %PDF header"


def test_encrypted_pdf(make_pdf):
    path = make_pdf("locked.pdf", ["Top secret."], owner_password="owner", user_password="user")
    assert load_error(path) == "PDF is encrypted"


def test_pdf_encrypted_with_empty_user_password_opens(make_pdf):
    path = make_pdf("open.pdf", ["Readable text."], owner_password="owner")
    assert load(path).text == "Readable text."


def test_pdf_without_text(make_pdf):
    assert load_error(make_pdf("scan.pdf", ["", ""])) == "no extractable text (scanned PDF?)"


# ---------------------------------------------------------------- finding files and hashing


def test_find_files_lists_supported_files_sorted_with_posix_ids(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "b" / "deeper").mkdir(parents=True)
    for name in ("z.txt", "a.MD", "b/page.html", "b/deeper/doc.pdf", "b/x.markdown", "b/y.htm"):
        (corpus / name).write_text("text", encoding="utf-8")
    found, skipped = find_files(corpus)
    assert found == [
        ("a.MD", corpus / "a.MD"),
        ("b/deeper/doc.pdf", corpus / "b/deeper/doc.pdf"),
        ("b/page.html", corpus / "b/page.html"),
        ("b/x.markdown", corpus / "b/x.markdown"),
        ("b/y.htm", corpus / "b/y.htm"),
        ("z.txt", corpus / "z.txt"),
    ]
    assert skipped == []


def test_find_files_says_nothing_of_rags_own_trash_folder(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / TRASH_FOLDER / "20260101-000000.000000001").mkdir(parents=True)
    (corpus / TRASH_FOLDER / "20260101-000000.000000001" / "removed.txt").write_text("gone", encoding="utf-8")
    (corpus / "sub" / TRASH_FOLDER).mkdir(parents=True)  # only the corpus folder's own is rag's
    (corpus / "kept.txt").write_text("kept", encoding="utf-8")
    found, skipped = find_files(corpus)
    assert found == [("kept.txt", corpus / "kept.txt")]
    assert skipped == [(f"sub/{TRASH_FOLDER}", "hidden directory")]


def test_find_files_skips_with_reasons(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / ".git").mkdir(parents=True)
    (corpus / ".git" / "inside.txt").write_text("never listed", encoding="utf-8")
    (corpus / ".hidden.txt").write_text("hidden", encoding="utf-8")
    (corpus / "data.csv").write_text("a,b", encoding="utf-8")
    (corpus / "noext").write_text("x", encoding="utf-8")
    (corpus / "big.txt").write_bytes(b"x" * 3000)
    (corpus / "small.txt").write_bytes(b"x" * 100)
    found, skipped = find_files(corpus, max_file_mb=2000 / 1024 / 1024)
    assert [doc_id for doc_id, _ in found] == ["small.txt"]
    reasons = dict(skipped)
    assert list(reasons) == sorted(reasons)
    assert reasons.keys() == {".git", ".hidden.txt", "data.csv", "noext", "big.txt"}
    assert reasons[".git"] == "hidden directory"
    assert reasons[".hidden.txt"] == "hidden file"
    assert reasons["data.csv"] == "unsupported file type '.csv'; tables are not read: save the text as .txt"
    assert reasons["noext"].startswith("unsupported file type (no extension)")
    assert reasons["big.txt"].startswith("file too large")
    assert all("\n" not in reason for reason in reasons.values())


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinks_out_of_the_corpus_are_skipped_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the corpus", encoding="utf-8")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "real.txt").write_text("inside", encoding="utf-8")
    (corpus / "link.txt").symlink_to(outside / "secret.txt")
    (corpus / "linked-dir").symlink_to(outside, target_is_directory=True)
    (corpus / "loop").symlink_to(corpus, target_is_directory=True)
    (corpus / "dangling.txt").symlink_to(tmp_path / "missing.txt")
    found, skipped = find_files(corpus)
    assert [doc_id for doc_id, _ in found] == ["real.txt"]
    reasons = dict(skipped)
    assert reasons["link.txt"] == "symlink to outside the corpus (not followed)"
    assert reasons["linked-dir"] == "symlink to outside the corpus (not followed)"
    assert reasons["loop"].startswith("symlinked directory (not followed")
    assert reasons["dangling.txt"] == "broken symlink"
    assert not any("secret" in doc_id for doc_id in reasons)


def test_find_files_on_a_missing_folder_says_so(tmp_path):
    with pytest.raises(RagError, match="corpus directory not found"):
        find_files(tmp_path / "nope")


def test_file_hash_is_sha256_and_matches_loaded_hash(tmp_path):
    path = tmp_path / "a.txt"
    data = ("line of text\n" * 200_000).encode()  # > one read block
    path.write_bytes(data)
    assert file_hash(path) == hashlib.sha256(data).hexdigest()
    assert load(path).content_hash == file_hash(path)
    assert load_document(path, "a.txt", "given").content_hash == "given"


def test_supported_suffixes_contract():
    assert SUPPORTED_SUFFIXES == {".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".xhtml",
                                  ".docx", ".odt", ".pptx", ".epub"}
