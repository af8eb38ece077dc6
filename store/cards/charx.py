"""CHARX archives: a zip with `card.json` at its root and assets referenced as `embeded://path`.

Zip files are a classic attack surface, so reading is defensive: the member count is
checked before the central directory is parsed, every member name is checked (no `..`,
no absolute or drive paths, no backslashes, no control characters, no duplicates),
only stored or deflated members are read, declared sizes are checked before reading and
the bytes actually read are capped too. Member names are looked up, never used as paths.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from store.cards.decode import check_size, short, size_text
from store.cards.model import MAX_ARCHIVE_BYTES, MAX_ARCHIVE_MEMBERS, MAX_MEMBER_BYTES
from store.errors import CardFormatError, CardTooLargeError

CARD_MEMBER = "card.json"
EMBEDDED_PREFIXES = ("embeded://", "embedded://")  # the spec's spelling, and the fixed one
_DRIVE = re.compile(r"[A-Za-z]:")
_READ_STEP = 1024 * 1024
_END_OF_DIRECTORY = b"PK\x05\x06"
# Everything the zip module raises for a damaged archive, as opposed to our own errors.
_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
    KeyError,
    IndexError,
    OverflowError,
)


@contextmanager
def _zip_errors() -> Iterator[None]:
    try:
        yield
    except CardFormatError:
        raise
    except _ZIP_ERRORS as err:
        raise CardFormatError(f"the CHARX archive is damaged ({err})") from None


def embedded_path(uri: str) -> str | None:
    """The archive path of an `embeded://` asset uri, else None."""
    for prefix in EMBEDDED_PREFIXES:
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return None


def check_member_name(name: str) -> None:
    """Reject a zip member name that could climb out of a folder if anyone ever extracted it.

    Raises:
        CardFormatError: `..` parts, an absolute or drive path, a backslash, a control character.
    """
    unsafe = (
        not name
        or name.startswith("/")
        or "\\" in name
        or _DRIVE.match(name) is not None
        or ".." in name.split("/")
        or any(ord(char) < 32 or ord(char) == 127 for char in name)
    )
    if unsafe:
        raise CardFormatError(f"the CHARX archive holds a file with an unsafe name ({short(name)})")


def _declared_member_count(data: bytes) -> int | None:
    # The end-of-central-directory record (in the last 64 KiB + 22 bytes) states the
    # member count; checking it first avoids parsing a directory of a million entries.
    tail_start = max(0, len(data) - 65_536 - 22)
    at = data.rfind(_END_OF_DIRECTORY, tail_start)
    if at < 0 or at + 22 > len(data):
        return None
    (count,) = struct.unpack_from("<H", data, at + 10)
    return None if count == 0xFFFF else count  # 0xFFFF: the real count is in a zip64 record


class CharxReader:
    """An opened, name-checked CHARX archive whose members are read with size caps."""

    def __init__(self, data: bytes) -> None:
        declared = _declared_member_count(data)
        if declared is not None and declared > MAX_ARCHIVE_MEMBERS:
            raise CardTooLargeError(
                f"the CHARX archive has {declared:,} files; the limit is {MAX_ARCHIVE_MEMBERS:,}"
            )
        with _zip_errors():
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self._zip.infolist()
        try:
            self._members = self._check_members(infos)
        except CardFormatError:
            self._zip.close()
            raise
        self._read_total = 0

    @staticmethod
    def _check_members(infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        if len(infos) > MAX_ARCHIVE_MEMBERS:
            raise CardTooLargeError(
                f"the CHARX archive has {len(infos):,} files; the limit is {MAX_ARCHIVE_MEMBERS:,}"
            )
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            check_member_name(info.orig_filename)
            check_member_name(info.filename)
            if info.filename in members:
                raise CardFormatError(f"the CHARX archive lists the file {short(info.filename)} twice")
            members[info.filename] = info
        return members

    def __enter__(self) -> CharxReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._zip.close()

    def read(self, name: str) -> bytes | None:
        """The member's bytes, or None if the archive has no such member.

        Raises:
            CardTooLargeError: the member, or all members read so far, over their limits.
            CardFormatError: encrypted, an unsupported compression method, or damaged.
        """
        info = self._members.get(name)
        if info is None or info.is_dir():
            return None
        what = f"{short(name)} in the CHARX archive"
        if info.flag_bits & 0x1:
            raise CardFormatError(f"{what} is encrypted, and Hearth does not open encrypted archives")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CardFormatError(f"{what} uses a compression method Hearth does not read")
        check_size(info.file_size, MAX_MEMBER_BYTES, what)
        budget = min(MAX_MEMBER_BYTES, MAX_ARCHIVE_BYTES - self._read_total)
        if info.file_size > budget:
            raise CardTooLargeError(f"the CHARX archive unpacks to more than {size_text(MAX_ARCHIVE_BYTES)}")
        payload = self._read_capped(info, budget, what)
        self._read_total += len(payload)
        return payload

    def _read_capped(self, info: zipfile.ZipInfo, budget: int, what: str) -> bytes:
        # The declared size was checked, but a lying header must not make us read more.
        parts: list[bytes] = []
        total = 0
        with _zip_errors(), self._zip.open(info) as member:
            while part := member.read(_READ_STEP):
                total += len(part)
                if total > budget:
                    raise CardTooLargeError(f"{what} unpacks to more than {size_text(budget)}")
                parts.append(part)
        return b"".join(parts)


def write_charx(members: list[tuple[str, bytes]]) -> bytes:
    """A deflated zip of `(name, bytes)` members, with fixed timestamps so output is reproducible."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, payload in members:
            check_member_name(name)
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, payload)
    return buffer.getvalue()
