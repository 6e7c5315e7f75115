"""One module per file format: each turns a file's bytes into the text a reader sees.

Every format builds its text through :class:`~rag.ingest.builder.TextBuilder`, which keeps
paragraphs, headings (sections), page starts and the map back to the original file in step with
the text; :mod:`rag.loaders` picks the format and applies the checks common to all.
"""
