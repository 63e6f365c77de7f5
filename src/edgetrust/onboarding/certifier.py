"""Operational certificates, issued only for an affirming attestation result.

The certifier is the last gate of onboarding (DESIGN.md, "Onboarding flow"). It issues the device's
short-lived mTLS client certificate from the cluster CA when, and only when:

1. the attestation result is ``affirming`` (a ``warning`` or ``none`` is not an admission);
2. the CSR's signature verifies with the key it carries (proof of possession), and
3. that key is exactly the key the verified EAT names in ``cnf`` (RFC 8747), compared as
   SubjectPublicKeyInfo bytes -- otherwise someone else's evidence could certify an attacker's key.

The certificate carries the URI SAN ``spiffe://<trust-domain>/device/<ueid-hex>`` and lives
``lifetime`` (default one hour). Its record -- together with the device registration, the audit
entry and, when given, the consumption of the challenge nonce -- is committed in the registry in
one transaction *before* :meth:`Certifier.issue` returns: a certificate that leaves the verifier is
always in the store (a crash in between loses an unused certificate, never a record).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from edgetrust.attest.ear import AttestationResult
from edgetrust.certs.builders import IssuerSource, build_operational_certificate, spiffe_id
from edgetrust.errors import (
    ConfigError,
    KeyBindingError,
    PermissionDeniedError,
    SignatureError,
)
from edgetrust.onboarding.records import (
    DeviceRegistration,
    IssuanceReceipt,
    NewCertificate,
    NonceClaim,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "Certifier",
    "IssuanceStore",
    "IssuedCertificate",
    "spki_der",
    "verify_csr_binding",
]

DEFAULT_LIFETIME: Final = timedelta(hours=1)
MAX_LIFETIME: Final = timedelta(days=1)
_PEM = serialization.Encoding.PEM
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


class IssuanceStore(Protocol):
    """The registry seam the certifier needs (the SQL store implements it)."""

    def record_issuance(
        self,
        *,
        device: DeviceRegistration,
        certificate: NewCertificate,
        actor: str,
        now: datetime,
        detail: Mapping[str, Any] | None = None,
        nonce: NonceClaim | None = None,
    ) -> IssuanceReceipt: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuedCertificate:
    """A committed operational certificate, ready to hand to the device."""

    certificate: x509.Certificate
    #: The issuers above it, up to and including the cluster CA root.
    chain: tuple[x509.Certificate, ...]
    spiffe_id: str
    receipt: IssuanceReceipt

    @property
    def not_after(self) -> datetime:
        return self.certificate.not_valid_after_utc


def spki_der(key: PublicKeyTypes) -> bytes:
    """A public key as DER SubjectPublicKeyInfo (the form keys are compared and hashed in)."""
    return key.public_bytes(serialization.Encoding.DER, _SPKI)


def verify_csr_binding(
    csr: x509.CertificateSigningRequest, bound_key: PublicKeyTypes | None
) -> PublicKeyTypes:
    """Check the CSR proves possession of ``bound_key`` (the EAT's ``cnf``); return that key.

    Raises :class:`SignatureError` when the CSR's own signature does not verify and
    :class:`KeyBindingError` when no key is bound or the CSR names another key.
    """
    key = _check_same_key(csr, bound_key)
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError) as e:
        raise SignatureError(f"the CSR cannot be checked: {e}") from e
    if not valid:
        raise SignatureError("the CSR's signature does not verify with the key it carries")
    return key


def _check_same_key(
    csr: x509.CertificateSigningRequest, bound_key: PublicKeyTypes | None
) -> PublicKeyTypes:
    if bound_key is None:
        raise KeyBindingError("the evidence binds no key (cnf), so no certificate can be issued")
    try:
        same = spki_der(csr.public_key()) == spki_der(bound_key)
    except (ValueError, TypeError) as e:
        raise KeyBindingError(f"the CSR key cannot be compared with the cnf key: {e}") from e
    if not same:
        raise KeyBindingError("the CSR's key is not the key named in the evidence's cnf claim")
    return bound_key


class Certifier:
    """Issues and records operational certificates from the cluster CA."""

    def __init__(
        self,
        *,
        ca: IssuerSource,
        chain: tuple[x509.Certificate, ...],
        store: IssuanceStore,
        trust_domain: str,
        lifetime: timedelta = DEFAULT_LIFETIME,
        actor: str = "verifier",
    ) -> None:
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ConfigError(
                f"operational certificate lifetime must be in (0, {MAX_LIFETIME}], not {lifetime}"
            )
        spiffe_id(trust_domain, b"\x01")  # validates the trust domain now, not per request
        self._ca = ca
        self._chain = chain
        self._store = store
        self._trust_domain = trust_domain
        self._lifetime = lifetime
        self._actor = actor

    @property
    def trust_domain(self) -> str:
        return self._trust_domain

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime

    def spiffe_id(self, ueid: bytes) -> str:
        return spiffe_id(self._trust_domain, ueid)

    def issue(
        self,
        *,
        result: AttestationResult,
        csr: x509.CertificateSigningRequest,
        device_id_certificate: x509.Certificate,
        now: datetime,
        nonce: NonceClaim | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> IssuedCertificate:
        """Issue, record (committed) and return the certificate; or raise without storing.

        Raises :class:`PermissionDeniedError` for a result that is not affirming or names no
        device, the errors of :func:`verify_csr_binding`, and whatever the store raises
        (:class:`~edgetrust.errors.RevokedError`, nonce errors, :class:`StoreError` ...).
        """
        if not result.affirming:
            raise PermissionDeniedError(
                f"no certificate for a {result.status.label!r} attestation result"
            )
        ueid, product = result.ueid, result.product
        if not ueid or not product:
            raise PermissionDeniedError("the attestation result names no device (ueid, product)")
        # The key binding here; the CSR's own signature (proof of possession) is checked by
        # build_operational_certificate (a SignatureError), so it is not verified twice.
        _check_same_key(csr, result.device_key)
        identity = self.spiffe_id(ueid)
        certificate = build_operational_certificate(
            csr=csr, issuer=self._ca, spiffe_id=identity, lifetime=self._lifetime, now=now
        )
        device_key = device_id_certificate.public_key()
        receipt = self._store.record_issuance(
            device=DeviceRegistration(
                ueid=ueid,
                product=product,
                device_id_pem=device_id_certificate.public_bytes(_PEM).decode(),
                device_id_fingerprint=hashlib.sha256(spki_der(device_key)).digest(),
            ),
            certificate=NewCertificate(
                serial=certificate.serial_number,
                spiffe_id=identity,
                not_before=certificate.not_valid_before_utc,
                not_after=certificate.not_valid_after_utc,
                pem=certificate.public_bytes(_PEM).decode(),
            ),
            actor=self._actor,
            now=now,
            detail=detail,
            nonce=nonce,
        )
        return IssuedCertificate(
            certificate=certificate, chain=self._chain, spiffe_id=identity, receipt=receipt
        )
