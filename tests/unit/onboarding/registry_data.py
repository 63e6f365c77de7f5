"""Small builders of registry inputs for the store tests (no crypto needed at this level)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from edgetrust.onboarding.records import DeviceRegistration, NewCertificate

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def ueid(n: int) -> bytes:
    """A RAND-type UEID (RFC 9711: type byte 0x01 + 16 bytes)."""
    return b"\x01" + n.to_bytes(16, "big")


def device(
    n: int = 1, *, key: int | None = None, product: str = "edgetrust-sim"
) -> DeviceRegistration:
    fingerprint = hashlib.sha256(f"device-key-{n if key is None else key}".encode()).digest()
    return DeviceRegistration(
        ueid=ueid(n), product=product, device_id_pem=PEM, device_id_fingerprint=fingerprint
    )


def certificate(
    serial: int, *, n: int = 1, now: datetime = NOW, lifetime: timedelta = timedelta(hours=1)
) -> NewCertificate:
    return NewCertificate(
        serial=serial,
        spiffe_id=f"spiffe://edgetrust.test/device/{ueid(n).hex()}",
        not_before=now,
        not_after=now + lifetime,
        pem=PEM,
    )
