"""The registry's typed values: what callers hand to the store and what it hands back.

Inputs (:class:`DeviceRegistration`, :class:`NewCertificate`, :class:`NonceClaim`,
:class:`Endorsement`, :class:`AuditEvent`) check themselves when constructed, so a malformed or
oversized value never reaches SQL: bad values raise
:class:`~edgetrust.errors.InvalidRequestError`, too-large ones
:class:`~edgetrust.errors.OversizeError`. Outputs (``*Record``, :class:`RevocationEvent`,
:class:`IssuanceReceipt`) are built from table rows by the ``*_record`` functions at the end.

Bytes stay bytes (UEIDs, nonces, digests) and serial numbers stay integers; the tables hold them as
lower-case hex (serials without leading zeros, as ``edgetrust.v1.RevocationEvent.serial_hex``).
All times are aware UTC datetimes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row

from edgetrust.errors import InvalidRequestError, OversizeError

MAX_UEID = 64
MAX_NONCE = 64
MIN_NONCE = 8
MAX_NAME = 256
MAX_REASON = 1024
MAX_PEM = 64 * 1024
MAX_DOCUMENT = 4 * 1024 * 1024


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class RevocationKind(StrEnum):
    """What a revocation covers (``edgetrust.v1.RevocationKind`` without the heartbeat)."""

    DEVICE = "device"  # every certificate of the device, and every future attestation
    CERTIFICATE = "certificate"  # one certificate


def serial_hex(serial: int) -> str:
    """A serial number as lower-case hex without leading zeros."""
    return format(serial, "x")


# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRegistration:
    """What an issuance tells the registry about the device (from its verified DeviceID cert)."""

    ueid: bytes
    product: str
    device_id_pem: str
    #: SHA-256 of the DeviceID certificate's SubjectPublicKeyInfo (DER). A UEID stays bound to the
    #: first key registered for it; another key is a :class:`~edgetrust.errors.DeviceConflictError`.
    device_id_fingerprint: bytes

    def __post_init__(self) -> None:
        check_ueid(self.ueid)
        check_text("product", self.product, MAX_NAME)
        check_pem("DeviceID certificate", self.device_id_pem)
        if (
            not isinstance(self.device_id_fingerprint, bytes)
            or len(self.device_id_fingerprint) != 32
        ):
            raise InvalidRequestError("the DeviceID fingerprint must be a 32-byte SHA-256 digest")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCertificate:
    """An operational certificate about to be handed out (recorded before it is)."""

    serial: int
    spiffe_id: str
    not_before: datetime
    not_after: datetime
    pem: str

    def __post_init__(self) -> None:
        check_serial(self.serial)
        check_text("SPIFFE ID", self.spiffe_id, 512)
        check_pem("certificate", self.pem)
        if aware(self.not_after) <= aware(self.not_before):
            raise InvalidRequestError("certificate not_after must be after not_before")


@dataclass(frozen=True, slots=True, kw_only=True)
class NonceClaim:
    """A nonce presented back by a device, with the session it claims to belong to."""

    value: bytes
    session: str | None

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes):
            raise InvalidRequestError("a nonce must be bytes")
        if self.session is not None:
            check_text("session", self.session, MAX_NAME, allow_empty=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Endorsement:
    """Reference values for a product and firmware version (``""``: the whole product)."""

    product: str
    firmware_version: str
    #: A JSON object as text, e.g. :meth:`edgetrust.attest.reference.ReferenceValues.to_json`.
    document: str
    trust_anchors_pem: str | None = None

    def __post_init__(self) -> None:
        check_text("product", self.product, MAX_NAME)
        check_text("firmware version", self.firmware_version, 128, allow_empty=True)
        check_text("endorsement document", self.document, MAX_DOCUMENT)
        try:
            value = json.loads(self.document)
        except ValueError as e:
            raise InvalidRequestError(f"endorsement document is not JSON: {e}") from e
        if not isinstance(value, dict):
            raise InvalidRequestError("endorsement document must be a JSON object")
        if self.trust_anchors_pem is not None:
            check_pem("trust anchors", self.trust_anchors_pem, limit=MAX_DOCUMENT)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """An entry to append to the audit log (the store assigns ``seq``, ``at`` and the digest)."""

    actor: str
    #: Dotted lower-case verb, e.g. ``certificate.issued``, ``device.revoked``.
    action: str
    #: What it is about, e.g. ``device:<ueid hex>``, ``certificate:<serial hex>``.
    subject: str
    detail: Mapping[str, Any]

    def __post_init__(self) -> None:
        check_text("actor", self.actor, MAX_NAME)
        check_text("subject", self.subject, 512)
        check_text("audit action", self.action, 64)
        if not all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in self.action):
            raise InvalidRequestError(f"audit action {self.action!r} must be ASCII [A-Za-z0-9._-]")
        if not isinstance(self.detail, Mapping):
            raise InvalidRequestError("audit detail must be a mapping")


# ------------------------------------------------------------------------------ outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceRecord:
    ueid: bytes
    product: str
    status: DeviceStatus
    device_id_pem: str
    device_id_fingerprint: bytes
    created_at: datetime
    #: Last change, including the last certificate issued.
    updated_at: datetime
    revoked_at: datetime | None

    @property
    def ueid_hex(self) -> str:
        return self.ueid.hex()


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateRecord:
    serial: int
    ueid: bytes
    spiffe_id: str
    not_before: datetime
    not_after: datetime
    pem: str
    issued_at: datetime
    revoked_at: datetime | None
    #: The challenge nonce this certificate answered, when it was consumed with the issuance.
    nonce: bytes | None

    @property
    def serial_hex(self) -> str:
        return serial_hex(self.serial)


@dataclass(frozen=True, slots=True, kw_only=True)
class NonceRecord:
    value: bytes
    session: str | None
    device_hint: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuanceReceipt:
    """What :meth:`~edgetrust.onboarding.store.SqlRegistryStore.record_issuance` committed."""

    device: DeviceRecord
    certificate: CertificateRecord
    audit_seq: int
    new_device: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RevocationEvent:
    """One entry of the revocation feed (maps 1:1 onto ``edgetrust.v1.RevocationEvent``)."""

    seq: int
    kind: RevocationKind
    ueid: bytes
    serial: int | None
    reason: str
    actor: str
    revoked_at: datetime

    @property
    def ueid_hex(self) -> str:
        return self.ueid.hex()

    @property
    def serial_hex(self) -> str | None:
        return None if self.serial is None else serial_hex(self.serial)


@dataclass(frozen=True, slots=True, kw_only=True)
class EndorsementRecord:
    product: str
    firmware_version: str
    document: str
    trust_anchors_pem: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord:
    seq: int
    at: datetime
    actor: str
    action: str
    subject: str
    #: The detail exactly as stored (canonical JSON); :attr:`detail` parses it.
    detail_json: str
    #: SHA-256(previous entry's digest || this entry), see :mod:`edgetrust.onboarding.ledger`.
    digest: bytes

    @property
    def detail(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.detail_json)
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditChain:
    """A verified audit log: its length and the digest of its last entry."""

    length: int
    head: bytes


# ------------------------------------------------------------------------------ checks


def aware(when: datetime) -> datetime:
    """``when`` in UTC; a naive datetime is refused (the registry never guesses a zone)."""
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        raise InvalidRequestError("times given to the registry must be timezone-aware datetimes")
    return when.astimezone(UTC)


def check_text(what: str, value: str, limit: int, *, allow_empty: bool = False) -> None:
    if not isinstance(value, str):
        raise InvalidRequestError(f"{what} must be text")
    if not value and not allow_empty:
        raise InvalidRequestError(f"{what} must not be empty")
    if len(value) > limit:
        raise OversizeError(f"{what} is longer than {limit} characters")
    if "\x00" in value:
        raise InvalidRequestError(f"{what} contains a NUL character")


def check_ueid(ueid: bytes) -> None:
    if not isinstance(ueid, bytes) or not 1 <= len(ueid) <= MAX_UEID:
        raise InvalidRequestError(f"a UEID must be 1..{MAX_UEID} bytes")


def check_serial(serial: int) -> None:
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 < serial < 2**160:
        raise InvalidRequestError("a certificate serial must be a positive integer of <= 160 bits")


def check_pem(what: str, pem: str, *, limit: int = MAX_PEM) -> None:
    check_text(what, pem, limit)
    if "-----BEGIN " not in pem:
        raise InvalidRequestError(f"{what} is not PEM")


# ------------------------------------------------------------------------------ rows -> records


def device_record(row: Row[Any]) -> DeviceRecord:
    return DeviceRecord(
        ueid=bytes.fromhex(row.ueid),
        product=row.product,
        status=DeviceStatus(row.status),
        device_id_pem=row.device_id_pem,
        device_id_fingerprint=bytes.fromhex(row.device_id_fingerprint),
        created_at=row.created_at,
        updated_at=row.updated_at,
        revoked_at=row.revoked_at,
    )


def certificate_record(row: Row[Any]) -> CertificateRecord:
    return CertificateRecord(
        serial=int(row.serial, 16),
        ueid=bytes.fromhex(row.ueid),
        spiffe_id=row.spiffe_id,
        not_before=row.not_before,
        not_after=row.not_after,
        pem=row.pem,
        issued_at=row.issued_at,
        revoked_at=row.revoked_at,
        nonce=None if row.nonce is None else bytes.fromhex(row.nonce),
    )


def nonce_record(row: Row[Any]) -> NonceRecord:
    return NonceRecord(
        value=bytes.fromhex(row.value),
        session=row.session,
        device_hint=row.device_hint,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


def revocation_event(row: Row[Any]) -> RevocationEvent:
    return RevocationEvent(
        seq=int(row.seq),
        kind=RevocationKind(row.kind),
        ueid=bytes.fromhex(row.ueid),
        serial=None if row.serial is None else int(row.serial, 16),
        reason=row.reason,
        actor=row.actor,
        revoked_at=row.at,
    )


def endorsement_record(row: Row[Any]) -> EndorsementRecord:
    return EndorsementRecord(
        product=row.product,
        firmware_version=row.firmware_version,
        document=row.document,
        trust_anchors_pem=row.trust_anchors_pem,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def audit_record(row: Row[Any]) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        at=row.at,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        detail_json=row.detail,
        digest=bytes.fromhex(row.digest),
    )
