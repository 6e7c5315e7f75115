"""Bytes → str for text formats: Unicode with or without a BOM, a declared charset, or a legacy
encoding detected by charset-normalizer, refused with a reason when the guess is not good enough.
"""

from __future__ import annotations

import re

from ..types import LoadError

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Control characters other than \t \n \v \f \r; text has few, binary data has many.
_CONTROL_CHAR = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_MAX_CONTROL_CHAR_RATIO = 0.01
# charset-normalizer's "chaos" (share of the text that looks garbled) above which a guess is refused.
_MAX_CHAOS = 0.2
_MAX_GUESS_CHAOS = 0.6  # above this it is not text in any encoding: binary data
# Western text decoded as cp1252 has accented letters one or two at a time ("café", "Ã©" for
# UTF-8 read as cp1252); Cyrillic, Greek or CJK bytes read as cp1252 make long runs ("Ïðèâåò").
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_MAX_WESTERN_RUN = 2.0
_DETECTION_SAMPLE_BYTES = 1 << 20
_TIE = 0.01
_COMMON = ("cp1252", "cp1251", "gb18030", "gbk", "cp932", "shift_jis", "euc_jp", "big5", "cp949",
           "euc_kr", "cp1250", "iso8859_2", "koi8_r", "cp1253", "cp1254", "cp1255", "cp1256",
           "cp1257", "cp874", "cp1258")


def decode_text(data: bytes, declared_encoding: str | None = None) -> str:
    """Decode bytes that should be text, newlines unified; LoadError if they are not text or
    their encoding cannot be told with confidence."""
    if data.startswith(_UTF16_BOMS):
        text = _try_decode(data, "utf-16")
    elif b"\x00" in data:
        text = None
    else:
        text = _try_decode(data, "utf-8-sig")
        if text is None and declared_encoding:
            text = _try_decode(data, declared_encoding)
        if text is None:
            text = _legacy(data)
    if text is None or _looks_binary(text):
        raise LoadError("not text: binary data")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _legacy(data: bytes) -> str | None:
    """Western text in cp1252 (the common case, and detectors guess badly on short Latin text),
    else charset-normalizer's best guess if it is confident."""
    western = _try_decode(data, "cp1252")
    if western is not None and _looks_western(western):
        return western
    from charset_normalizer import from_bytes  # deferred: only legacy files pay for the import

    sample = data[:_DETECTION_SAMPLE_BYTES]
    matches = [m for m in from_bytes(sample, threshold=_MAX_GUESS_CHAOS) if not m.encoding.startswith("utf_")]
    if not matches:
        return None
    # Near-ties (cp1251 and mac_cyrillic differ in a few capitals) go to the encoding more
    # files are written in.
    tied = [m for m in matches if m.chaos <= matches[0].chaos + _TIE]
    best = min(tied, key=lambda m: (_COMMON.index(m.encoding) if m.encoding in _COMMON else len(_COMMON)))
    if best.chaos > _MAX_CHAOS:
        raise LoadError(
            f"cannot tell which text encoding it uses (best guess {best.encoding}, "
            f"{best.chaos:.0%} of it looks garbled); save it as UTF-8"
        )
    return _try_decode(data, best.encoding)


def _looks_western(text: str) -> bool:
    runs = _NON_ASCII_RUN.findall(text)
    return not runs or sum(map(len, runs)) / len(runs) <= _MAX_WESTERN_RUN


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
