"""The measurements of our device profile: the :class:`Measurement` value and its validation.

The measurements travel as one RFC 9711 ``measurements-format`` entry, a measurement report
``[60, bstr .cbor [+ measurement]]`` (see :mod:`edgetrust.attest.eat`); this module decodes the
reports (:func:`decode_measurement_report`), validates each measurement map and builds the
:class:`Measurement` objects on first read. The common shape of a map (a dict with known fields,
every value of its exact type) is recognised by :func:`_plain_report` in one pass; anything else
goes to :meth:`Measurement._checked`, which applies the same rules one by one and raises the
precise :class:`~edgetrust.errors.ClaimError` (a property test compares both).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from edgetrust.attest import cbor
from edgetrust.attest.eat.drafts import draft_of, set_class
from edgetrust.attest.eat.vocabulary import (
    DEVICE_PROFILE,
    DIGEST_SIZES,
    MEASUREMENT_CONTENT_FORMAT,
)
from edgetrust.errors import ClaimError

__all__ = ["Measurement", "decode_measurement_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """One measurement of our device profile (see :mod:`edgetrust.attest.eat`)."""

    name: str
    digest_alg: str
    digest: bytes
    version: str | None = None
    svn: int | None = None
    layer: int | None = None

    def to_cbor(self) -> dict[int, Any]:
        out: dict[int, Any] = {1: self.name, 2: self.digest_alg, 3: self.digest}
        if self.version is not None:
            out[4] = self.version
        if self.svn is not None:
            out[5] = self.svn
        if self.layer is not None:
            out[6] = self.layer
        return out

    @classmethod
    def from_cbor(cls, value: object) -> Measurement:
        return _measurement(value)

    @classmethod
    def _checked(cls, value: object) -> Measurement:
        # every rule with its own message; _measurement's fast path accepts a subset of this
        if not cbor.is_map(value):
            raise ClaimError("a measurement must be a map")
        m: Mapping[Any, Any] = value  # type: ignore[assignment]
        if not m.keys() <= _MEASUREMENT_FIELDS:
            unknown = sorted(map(str, m.keys() - _MEASUREMENT_FIELDS))
            raise ClaimError(f"unknown measurement field(s) {unknown}")
        name, alg, digest = m.get(1), m.get(2), m.get(3)
        if type(name) is not str or not name:
            raise ClaimError("measurement name (1) must be non-empty text")
        size = DIGEST_SIZES.get(alg) if type(alg) is str else None
        if size is None:
            raise ClaimError(f"measurement {name!r}: unsupported digest algorithm {alg!r}")
        if type(digest) is not bytes or len(digest) != size:
            raise ClaimError(f"measurement {name!r}: digest must be {size} bytes")
        version, svn, layer = m.get(4), m.get(5), m.get(6)
        if version is not None and type(version) is not str:
            raise ClaimError(f"measurement {name!r}: version (4) must be text")
        for what, number in (("svn (5)", svn), ("layer (6)", layer)):
            if number is not None and (type(number) is not int or number < 0):
                raise ClaimError(f"measurement {name!r}: {what} must be an unsigned integer")
        measurement = _MeasurementDraft(name, alg, digest, version, svn, layer)
        set_class(measurement, "__class__", Measurement)
        return measurement  # type: ignore[no-any-return]


_MEASUREMENT_FIELDS: Final = frozenset({1, 2, 3, 4, 5, 6})


def _measurement(m: Any) -> Measurement:
    """One measurement of a report (validated), the hot path of verify_eat.

    The common shape (a dict with known fields, every value well typed) is checked inline and
    built through the draft; anything else goes to Measurement._checked, which applies the same
    rules one by one and raises the precise ClaimError.
    """
    if _is_plain_measurement(m):
        get = m.get
        measurement = _MeasurementDraft(get(1), get(2), get(3), get(4), get(5), get(6))
        set_class(measurement, "__class__", Measurement)
        return measurement  # type: ignore[no-any-return]
    return Measurement._checked(m)


def _is_plain_measurement(m: Any) -> bool:
    """True for a measurement map of the common shape that Measurement._checked accepts as is:
    a dict with known fields only, every value of its exact type and size."""
    return _plain_report((m,))


def _plain_report(report: Sequence[Any]) -> bool:
    """True if every measurement of ``report`` is plain (see _is_plain_measurement)."""
    try:
        for m in report:
            if type(m) is not dict:
                return False
            name, alg, digest = m[1], m[2], m[3]  # KeyError: not plain
            if (
                type(name) is not str
                or not name
                or type(alg) is not str
                or type(digest) is not bytes
                or len(digest) != DIGEST_SIZES[alg]  # KeyError: not plain
            ):
                return False
            more = len(m) - 3  # (with exactly three fields, they are 1, 2 and 3)
            if more:
                get = m.get
                version, svn, layer = get(4), get(5), get(6)
                if (
                    # any other field (or a null one) makes the count differ: not plain
                    (version is not None) + (svn is not None) + (layer is not None) != more
                    or (version is not None and type(version) is not str)
                    or (svn is not None and (type(svn) is not int or svn < 0))
                    or (layer is not None and (type(layer) is not int or layer < 0))
                ):
                    return False
    except KeyError:
        return False
    return True


# built through the draft once validated (see edgetrust.attest.eat.drafts)
_MeasurementDraft: Final = draft_of(Measurement)


_ARRAY_TYPES: Final = (list, tuple)


def decode_measurement_report(value: object) -> _PendingMeasurements:
    """The ``measurements`` claim of the device profile: one or more measurement reports
    ``[60, bstr .cbor [+ measurement]]``, every measurement validated (built on first read)."""
    if not isinstance(value, _ARRAY_TYPES) or not value:
        raise ClaimError("claim measurements must be a non-empty array")
    out: list[Any] = []  # validated measurement maps (or, off the fast path, Measurements)
    for entry in value:
        if (
            not isinstance(entry, _ARRAY_TYPES)
            or len(entry) != 2
            or type(entry[0]) is not int
            or entry[0] != MEASUREMENT_CONTENT_FORMAT
            or type(entry[1]) is not bytes
        ):
            raise ClaimError(
                f"measurements of the {DEVICE_PROFILE} profile must be "
                f"[{MEASUREMENT_CONTENT_FORMAT}, bstr .cbor [+ measurement]]"
            )
        report = cbor.loads(entry[1], expect=list)
        if not report:
            raise ClaimError("an empty measurement report")
        if _plain_report(report):
            out += report
        else:
            out += [m if _is_plain_measurement(m) else Measurement._checked(m) for m in report]
    return _PendingMeasurements(out)


class _PendingMeasurements(tuple[Any, ...]):
    """Validated measurements of the device profile: maps that passed _is_plain_measurement (or,
    off that path, Measurements already built). The Measurement objects are built on the first
    read of ``EatClaims.measurements`` (see edgetrust.attest.eat.model._ResolvingSlot)."""

    __slots__ = ()

    def resolve(self) -> tuple[Measurement, ...]:
        return tuple(_measurement(m) if type(m) is not Measurement else m for m in self)
