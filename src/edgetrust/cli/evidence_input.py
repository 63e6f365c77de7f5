"""What the ``edgetrust evidence`` commands read: token and key files, and instants.

Shared by :mod:`edgetrust.cli.evidence` (EAT / PSA tokens) and :mod:`edgetrust.cli.evidence_ear`
(attestation results). Every problem is unusable input: a one-line ``error:`` and exit 2.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from edgetrust.cli.reporting import fail

__all__ = ["MAX_INPUT", "parse_time", "read_input", "read_token"]

_HEX_TEXT = re.compile(rb"\s*(?:[0-9a-fA-F]{2}\s*)+")
#: Files larger than this are refused before reading.
MAX_INPUT = 1 << 20


def read_token(path: str) -> bytes:
    """A token from a file: raw bytes, or hexadecimal text. Unreadable -> exit 2."""
    data = read_input(path, "token")
    if _HEX_TEXT.fullmatch(data):
        return bytes.fromhex(data.decode("ascii"))
    return data


def read_input(path: str, what: str) -> bytes:
    """The bytes of a non-empty file of at most :data:`MAX_INPUT` bytes; else exit 2."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_INPUT:
            fail(f"{what} file {path} is larger than {MAX_INPUT} bytes")
        data = file.read_bytes()
    except OSError as e:
        fail(f"cannot read {what} file {path}: {e.strerror or e}")
    if not data:
        fail(f"{what} file {path} is empty")
    return data


def parse_time(text: str | None, option: str = "--at") -> dt.datetime:
    """``text`` (ISO 8601; naive means UTC) or, when None, the current time."""
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} is not an ISO 8601 date-time: {text!r}")
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
