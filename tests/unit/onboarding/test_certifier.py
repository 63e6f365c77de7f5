"""Certifier: only affirming results, CSR proof of possession, CSR key == cnf key, SPIFFE SAN,
the record committed (through the store seam) before the certificate is returned."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    Appraisal,
    AttestationResult,
    Tier,
    TrustVector,
    VerifierId,
)
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.errors import (
    ConfigError,
    KeyBindingError,
    PermissionDeniedError,
    RevokedError,
    SignatureError,
)
from edgetrust.onboarding.certifier import Certifier, verify_csr_binding
from edgetrust.onboarding.records import (
    CertificateRecord,
    DeviceRecord,
    DeviceRegistration,
    DeviceStatus,
    IssuanceReceipt,
    NewCertificate,
    NonceClaim,
)

NOW = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)
UEID = b"\x01" + bytes(range(32))


class RecordingStore:
    """The IssuanceStore seam: remembers what it was asked to commit, or refuses."""

    def __init__(self, refuse: Exception | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.refuse = refuse

    def record_issuance(
        self,
        *,
        device: DeviceRegistration,
        certificate: NewCertificate,
        actor: str,
        now: dt.datetime,
        detail: Mapping[str, Any] | None = None,
        nonce: NonceClaim | None = None,
    ) -> IssuanceReceipt:
        if self.refuse is not None:
            raise self.refuse
        self.calls.append({"device": device, "certificate": certificate, "nonce": nonce})
        record = DeviceRecord(
            ueid=device.ueid, product=device.product, status=DeviceStatus.ACTIVE,
            device_id_pem=device.device_id_pem,
            device_id_fingerprint=device.device_id_fingerprint, created_at=now, updated_at=now,
            revoked_at=None,
        )  # fmt: skip
        cert = CertificateRecord(
            serial=certificate.serial, ueid=device.ueid, spiffe_id=certificate.spiffe_id,
            not_before=certificate.not_before, not_after=certificate.not_after,
            pem=certificate.pem, issued_at=now, revoked_at=None,
            nonce=nonce.value if nonce else None,
        )  # fmt: skip
        return IssuanceReceipt(device=record, certificate=cert, audit_seq=1, new_device=True)


@pytest.fixture(scope="module")
def cluster() -> CertificateAuthority:
    return CertificateAuthority.create(subject="CN=cluster", now=NOW - dt.timedelta(days=1))


@pytest.fixture(scope="module")
def device_id(cluster: CertificateAuthority) -> x509.Certificate:
    # Any certificate stands in for the DeviceID here; the certifier only records it.
    return cluster.anchor


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _csr(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(key, hashes.SHA256())
    )


def _result(
    key: ec.EllipticCurvePrivateKey | None, status: Tier = Tier.AFFIRMING
) -> AttestationResult:
    values = {Tier.AFFIRMING: 2, Tier.WARNING: 32, Tier.CONTRAINDICATED: 96}
    vector = TrustVector(instance_identity=values[status]) if status in values else TrustVector()
    appraisal = Appraisal(
        status=status,
        trust_vector=vector,
        ueid=UEID,
        product="edgetrust-sim",
        device_key=key.public_key() if key is not None else None,
    )
    return AttestationResult(
        submods={DEVICE_SUBMOD: appraisal},
        verifier_id=VerifierId(developer="t", build="t"),
        issued_at=NOW,
    )


def _certifier(cluster: CertificateAuthority, store: RecordingStore, **kw: Any) -> Certifier:
    return Certifier(ca=cluster, chain=cluster.chain, store=store, trust_domain="fleet.test", **kw)


def test_issues_a_spiffe_certificate_for_the_cnf_key_and_records_it(
    cluster: CertificateAuthority, device_id: x509.Certificate
) -> None:
    store = RecordingStore()
    key = _key()
    nonce = NonceClaim(value=b"n" * 32, session="s")
    issued = _certifier(cluster, store).issue(
        result=_result(key), csr=_csr(key), device_id_certificate=device_id, now=NOW, nonce=nonce
    )
    assert issued.certificate.public_key() == key.public_key()
    san = issued.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    spiffe = f"spiffe://fleet.test/device/{UEID.hex()}"
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [spiffe]
    assert issued.spiffe_id == spiffe
    assert issued.not_after == NOW + dt.timedelta(hours=1)
    assert issued.chain == cluster.chain
    [call] = store.calls
    assert call["certificate"].serial == issued.certificate.serial_number
    assert call["nonce"] == nonce
    assert call["device"].ueid == UEID
    assert issued.receipt.certificate.serial == issued.certificate.serial_number


def test_lifetime_is_configurable(
    cluster: CertificateAuthority, device_id: x509.Certificate
) -> None:
    key = _key()
    issued = _certifier(cluster, RecordingStore(), lifetime=dt.timedelta(minutes=10)).issue(
        result=_result(key), csr=_csr(key), device_id_certificate=device_id, now=NOW
    )
    assert issued.not_after == NOW + dt.timedelta(minutes=10)


@pytest.mark.parametrize("lifetime", [dt.timedelta(0), dt.timedelta(days=2)])
def test_lifetime_out_of_bounds_is_a_config_error(
    cluster: CertificateAuthority, lifetime: dt.timedelta
) -> None:
    with pytest.raises(ConfigError, match="lifetime"):
        _certifier(cluster, RecordingStore(), lifetime=lifetime)


def test_bad_trust_domain_is_a_config_error(cluster: CertificateAuthority) -> None:
    with pytest.raises(ConfigError, match="trust domain"):
        Certifier(ca=cluster, chain=(), store=RecordingStore(), trust_domain="bad/domain")


@pytest.mark.parametrize("status", [Tier.WARNING, Tier.CONTRAINDICATED, Tier.NONE])
def test_only_an_affirming_result_is_certified(
    cluster: CertificateAuthority, device_id: x509.Certificate, status: Tier
) -> None:
    store = RecordingStore()
    key = _key()
    result = _result(key, status)
    with pytest.raises(PermissionDeniedError, match="no certificate for a"):
        _certifier(cluster, store).issue(
            result=result, csr=_csr(key), device_id_certificate=device_id, now=NOW
        )
    assert store.calls == []


def test_result_without_a_device_is_refused(
    cluster: CertificateAuthority, device_id: x509.Certificate
) -> None:
    key = _key()
    result = _result(key)
    anonymous = replace(result, submods={DEVICE_SUBMOD: replace(result.device, ueid=None)})
    with pytest.raises(PermissionDeniedError, match="names no device"):
        _certifier(cluster, RecordingStore()).issue(
            result=anonymous, csr=_csr(key), device_id_certificate=device_id, now=NOW
        )


def test_csr_key_other_than_cnf_is_refused(
    cluster: CertificateAuthority, device_id: x509.Certificate
) -> None:
    store = RecordingStore()
    with pytest.raises(KeyBindingError, match="not the key named in the evidence's cnf"):
        _certifier(cluster, store).issue(
            result=_result(_key()), csr=_csr(_key()), device_id_certificate=device_id, now=NOW
        )
    assert store.calls == []


def test_store_refusal_propagates_and_nothing_is_returned(
    cluster: CertificateAuthority, device_id: x509.Certificate
) -> None:
    key = _key()
    store = RecordingStore(refuse=RevokedError("device is revoked"))
    with pytest.raises(RevokedError):
        _certifier(cluster, store).issue(
            result=_result(key), csr=_csr(key), device_id_certificate=device_id, now=NOW
        )


def test_binding_needs_a_cnf_key() -> None:
    with pytest.raises(KeyBindingError, match="binds no key"):
        verify_csr_binding(_csr(_key()), None)


def test_binding_refuses_a_csr_with_a_bad_signature() -> None:
    key = _key()
    good = _csr(key)
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    forged = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_csr_binding(forged, key.public_key())


def test_issue_refuses_a_csr_with_a_bad_signature(
    cluster: CertificateAuthority, device_id: x509.Certificate
) -> None:
    """The right key but no proof of possession: SignatureError, nothing recorded."""
    key = _key()
    der = bytearray(_csr(key).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    store = RecordingStore()
    with pytest.raises(SignatureError):
        _certifier(cluster, store).issue(
            result=_result(key),
            csr=x509.load_der_x509_csr(bytes(der)),
            device_id_certificate=device_id,
            now=NOW,
        )
    assert store.calls == []


def test_binding_returns_the_bound_key() -> None:
    key = _key()
    assert verify_csr_binding(_csr(key), key.public_key()) == key.public_key()
