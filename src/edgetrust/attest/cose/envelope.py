"""The fast path of COSE_Sign1 decoding: the common tagged envelope read without the CBOR decoder.

Our devices send ``18([h'A10126', {}, payload, signature])`` (or another short protected header
already seen): :func:`_sign1_envelope` recognises exactly that byte layout and builds the
:class:`~edgetrust.attest.cose.Sign1Message` directly; anything else returns None and goes to
the strict decoder (:mod:`edgetrust.attest.cose.decoding`). A test compares both on many inputs.
"""

from __future__ import annotations

from typing import Final

from edgetrust.attest import cbor
from edgetrust.attest.cose.messages import (
    _SIGN1_PAYLOAD,
    _SIGN1_PROTECTED,
    _SIGN1_PROTECTED_BYTES,
    _SIGN1_SIGNATURE,
    _SIGN1_TAGGED,
    _SIGN1_UNPROTECTED,
    Header,
    Sign1Message,
    _cached_protected,
)

_EMPTY_HEADER: Final[Header] = cbor.FrozenMap()


def _sign1_envelope(data: bytes) -> Sign1Message | None:
    """A tagged COSE_Sign1 of the common form, read without the CBOR decoder; else None.

    Taken only when ``data`` is exactly: tag 18 (``d2``), an array of four (``84``), a protected
    header of fewer than 24 bytes already decoded and checked once (in _PROTECTED_CACHE), an
    empty unprotected map (``a0``), the payload and the signature as byte strings whose lengths
    are in their shortest form, and nothing after the signature. Such bytes are one well-formed,
    definite-length data item that the strict decoder accepts, with the same fields (tested).
    Anything else (a CWT tag, untagged, an unprotected header, other length forms, a new
    protected header...) returns None and goes to the strict decoder.
    """
    try:
        if data[0] != 0xD2 or data[1] != 0x84:
            return None
        end = 3 + data[2] - 0x40  # protected: a byte string of length < 24, head 0x40 + length
        if not 3 <= end < 27 or data[end] != 0xA0:
            return None
        protected_bytes = data[3:end]
        protected = _cached_protected(protected_bytes)
        if protected is None:
            return None
        payload, end = _byte_string_at(data, end + 1)
        signature, end = _byte_string_at(data, end)
    except (IndexError, TypeError):  # too short; TypeError: a byte string head was not found
        return None
    if end != len(data):
        return None
    msg = object.__new__(Sign1Message)
    _SIGN1_PROTECTED_BYTES(msg, protected_bytes)
    _SIGN1_PROTECTED(msg, protected)
    _SIGN1_UNPROTECTED(msg, _EMPTY_HEADER)
    _SIGN1_PAYLOAD(msg, payload)
    _SIGN1_SIGNATURE(msg, signature)
    _SIGN1_TAGGED(msg, True)
    return msg


def _byte_string_at(data: bytes, at: int) -> tuple[bytes, int]:
    """The byte string whose head is at ``at`` (shortest-form length) and the offset after it.

    Raises IndexError when ``data`` ends early and TypeError when the head is not that of a byte
    string with a shortest-form length of at most 65535 bytes (see _sign1_envelope).
    """
    head = data[at]
    if 0x40 <= head < 0x58:
        start, length = at + 1, head - 0x40
    elif head == 0x58 and data[at + 1] >= 24:
        start, length = at + 2, data[at + 1]
    elif head == 0x59 and (length := data[at + 1] << 8 | data[at + 2]) >= 256:
        start = at + 3
    else:
        raise TypeError
    end = start + length
    if end > len(data):
        raise IndexError
    return data[start:end], end
