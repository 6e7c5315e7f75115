"""Zip containers (.docx, .odt, .pptx, .epub) checked before any library unpacks them."""

from __future__ import annotations

import io
import zipfile

from ..types import LoadError

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # old binary Office files, and password-protected new ones
MAX_UNPACKED_MB = 512
_MAX_MEMBERS = 20_000
# A part over 32 MB that inflates more than 100 times is a bomb: documents' XML compresses 5–30
# times, and only a repetitive small part goes further.
_MAX_RATIO = 100
_RATIO_CHECKED_FROM = 32 << 20


def open_checked(data: bytes, kind: str) -> zipfile.ZipFile:
    """The archive, or LoadError naming why it must not be unpacked (bomb, encrypted, not a zip)."""
    if data.startswith(_OLE_MAGIC):
        raise LoadError(
            f"password-protected or old-format {kind} file; remove the password, or save it "
            f"in the current format (.docx, .pptx, .odt) or as PDF")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as e:
        raise LoadError(f"malformed {kind} file: not a readable zip archive ({e})") from None
    if len(members) > _MAX_MEMBERS:
        raise LoadError(f"malformed {kind} file: {len(members)} parts in its archive")
    unpacked = sum(member.file_size for member in members)
    if unpacked > MAX_UNPACKED_MB << 20:
        raise LoadError(
            f"its archive unpacks to {unpacked >> 20} MB (> {MAX_UNPACKED_MB} MB; a zip bomb?)")
    for member in members:
        if member.flag_bits & 0x1:
            raise LoadError(f"{kind} file is encrypted")
        if member.file_size > _RATIO_CHECKED_FROM and member.file_size > _MAX_RATIO * max(1, member.compress_size):
            raise LoadError(
                f"part {member.filename!r} of its archive inflates {member.file_size // max(1, member.compress_size)} "
                f"times to {member.file_size >> 20} MB (a zip bomb?)")
    return archive
