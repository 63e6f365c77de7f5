"""Certificate builders: DeviceID from a CSR, alias layers, operational and server certificates."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgetrust.certs.builders import (
    Issuer,
    build_alias_certificate,
    build_device_id_certificate,
    build_operational_certificate,
    build_server_certificate,
    issue_certificate,
    random_serial,
    spiffe_id,
)
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.certs.chain import validate_chain
from edgetrust.certs.dice_ext import TCB_INFO_OID, UEID_OID
from edgetrust.certs.loading import load_csr
from edgetrust.errors import AlgorithmError, ConfigError, KeyFileError, SignatureError
from tests.unit.certs.factory import NOT_AFTER, NOT_BEFORE, NOW, UEID, name, tcb, usage

T = TypeVar("T", bound=x509.ExtensionType)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(now=NOW - timedelta(days=60), intermediate=True)


def _csr(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, cn: str | None = "dev"
) -> x509.CertificateSigningRequest:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    hash_alg = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, hash_alg)


def _ext(certificate: x509.Certificate, kind: type[T]) -> x509.Extension[T]:
    return certificate.extensions.get_extension_for_class(kind)


def test_device_id_certificate(ca: CertificateAuthority) -> None:
    device_key = ec.generate_private_key(ec.SECP256R1())
    cert = build_device_id_certificate(
        csr=_csr(device_key),
        issuer=ca,
        ueid=UEID,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        path_length=2,
    )
    assert cert.public_key() == device_key.public_key()
    assert cert.subject == name("dev")
    assert cert.issuer == ca.issuer.certificate.subject
    basic = _ext(cert, x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 2
    usage_ext = _ext(cert, x509.KeyUsage)
    assert usage_ext.critical
    assert usage_ext.value.key_cert_sign
    assert not usage_ext.value.digital_signature
    ueid = cert.extensions.get_extension_for_oid(UEID_OID)
    assert not ueid.critical
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca.issuer.certificate, x509.SubjectKeyIdentifier).value.digest
    assert cert.serial_number.bit_length() == 159
    result = validate_chain([cert, *ca.chain[:-1]], [ca.anchor], NOW)
    assert result.ueid is not None
    assert result.ueid.value == UEID


def test_device_id_default_subject_when_the_csr_has_none(ca: CertificateAuthority) -> None:
    cert = build_device_id_certificate(
        csr=_csr(ed25519.Ed25519PrivateKey.generate(), cn=None),
        issuer=ca.issuer,
        ueid=UEID,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
    )
    assert cert.subject == name(f"DeviceID {UEID.hex()}")


def test_device_id_refuses_a_csr_with_a_bad_signature(ca: CertificateAuthority) -> None:
    der = bytearray(
        _csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.DER)
    )
    der[-3] ^= 0x01
    with pytest.raises(SignatureError, match="CSR's signature does not verify"):
        build_device_id_certificate(
            csr=load_csr(bytes(der)),
            issuer=ca,
            ueid=UEID,
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
        )


@pytest.mark.parametrize("kind", ["p256", "ed25519"])
def test_alias_certificates(kind: str) -> None:
    make = (
        ed25519.Ed25519PrivateKey.generate
        if kind == "ed25519"
        else lambda: ec.generate_private_key(ec.SECP256R1())
    )
    device, k1, k2 = make(), make(), make()
    dice_id = bytes.fromhex("7a06eee41b789f4863d86b8778b1a201a6fedd56")
    a1 = build_alias_certificate(
        subject_key=k1,
        issuer_key=device,
        issuer_name=name("DeviceID"),
        tcb_info=tcb(1),
        is_ca=True,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
        serial=dice_id,
        path_length=0,
    )
    a2 = build_alias_certificate(
        subject_key=k2.public_key(),
        issuer_key=k1,
        issuer_name=a1.subject,
        tcb_info=tcb(2),
        multi_tcb_info=[tcb(3), tcb(4)],
        is_ca=False,
        not_before=NOT_BEFORE,
        not_after=NOT_AFTER,
    )
    assert a1.serial_number == int.from_bytes(dice_id, "big")
    assert a1.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == dice_id.hex()
    assert a1.extensions.get_extension_for_oid(TCB_INFO_OID).critical
    assert _ext(a1, x509.KeyUsage).value.key_cert_sign
    assert _ext(a1, x509.BasicConstraints).value.path_length == 0
    assert not _ext(a2, x509.BasicConstraints).value.ca
    assert _ext(a2, x509.KeyUsage).value.digital_signature
    assert not _ext(a2, x509.KeyUsage).value.key_cert_sign
    result = validate_chain([a2, a1], [device.public_key()], NOW)
    assert [t.layer for t in result.entries[0].tcb_info] == [2, 3, 4]
    assert result.entries[0].multi_tcb_info is not None


def test_operational_certificate(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    identity = spiffe_id("Fleet.Example", UEID)
    assert identity == f"spiffe://fleet.example/device/{UEID.hex()}"
    cert = build_operational_certificate(
        csr=_csr(key, cn="whatever the device says"), issuer=ca, spiffe_id=identity, now=NOW
    )
    assert cert.subject == name(UEID.hex())
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [identity]
    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert not _ext(cert, x509.BasicConstraints).value.ca
    assert cert.not_valid_after_utc - NOW == timedelta(hours=1)
    assert validate_chain([cert, *ca.chain], [ca.anchor], NOW).leaf == cert


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"lifetime": timedelta(days=2)}, ConfigError, "lifetime"),
        ({"lifetime": timedelta(0)}, ConfigError, "lifetime"),
        ({"spiffe_id": "https://x/y"}, ConfigError, "not a SPIFFE ID"),
        ({"csr_key": "ed25519"}, AlgorithmError, "must be EC"),
    ],
)
def test_operational_certificate_refusals(
    ca: CertificateAuthority, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if kwargs.pop("csr_key", None)
        else ec.generate_private_key(ec.SECP256R1())
    )
    arguments: dict[str, object] = {"spiffe_id": "spiffe://d/device/01", **kwargs}
    with pytest.raises(error, match=message):
        build_operational_certificate(csr=_csr(key), issuer=ca, **arguments)  # type: ignore[arg-type]


def test_server_certificate(ca: CertificateAuthority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_server_certificate(
        public_key=key.public_key(),
        issuer=ca,
        dns_names=["agent.local"],
        ip_addresses=["127.0.0.1"],
        now=NOW,
    )
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["agent.local"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ExtendedKeyUsageOID.SERVER_AUTH in _ext(cert, x509.ExtendedKeyUsage).value
    with pytest.raises(ConfigError, match="not an IP address"):
        build_server_certificate(public_key=key.public_key(), issuer=ca, ip_addresses=["x"])
    with pytest.raises(ConfigError, match="at least one"):
        build_server_certificate(public_key=key.public_key(), issuer=ca)


@pytest.mark.parametrize(
    ("arguments", "purposes"),
    [
        ({}, [ExtendedKeyUsageOID.SERVER_AUTH]),  # the default: a server only
        ({"client_auth": False}, [ExtendedKeyUsageOID.SERVER_AUTH]),
        ({"client_auth": True}, [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
    ],
    ids=["default", "server-only", "client-auth"],
)
def test_server_certificate_client_auth_only_when_asked(
    ca: CertificateAuthority, arguments: dict[str, bool], purposes: list[x509.ObjectIdentifier]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_server_certificate(
        public_key=key.public_key(), issuer=ca, dns_names=["agent.local"], now=NOW, **arguments
    )
    eku = _ext(cert, x509.ExtendedKeyUsage)
    assert list(eku.value) == purposes
    assert not eku.critical
    # The rest of the certificate does not depend on it.
    assert _ext(cert, x509.KeyUsage).value == usage(cert_sign=False)
    assert not _ext(cert, x509.BasicConstraints).value.ca


def test_serials() -> None:
    assert all(random_serial().bit_length() == 159 for _ in range(50))
    key = ec.generate_private_key(ec.SECP256R1())
    common = {
        "issuer_key": key,
        "issuer_name": name("x"),
        "subject_name": name("x"),
        "public_key": key.public_key(),
        "not_before": NOT_BEFORE,
        "not_after": NOT_AFTER,
        "ca": True,
        "key_usage": usage(cert_sign=True),
    }
    assert issue_certificate(**common, serial=b"\x00\x01").serial_number == 1  # type: ignore[arg-type]
    for bad in (0, -1, 1 << 159, b"\x80" + bytes(19)):
        with pytest.raises(ConfigError, match="serial number"):
            issue_certificate(**common, serial=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not after"):
        issue_certificate(**{**common, "not_after": NOT_BEFORE})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pathLen"):
        issue_certificate(**{**common, "ca": False}, path_length=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timezone-aware"):
        issue_certificate(**{**common, "not_before": NOT_BEFORE.replace(tzinfo=None)})  # type: ignore[arg-type]


def test_issuer_key_must_match_its_certificate(ca: CertificateAuthority) -> None:
    with pytest.raises(KeyFileError, match="does not belong"):
        Issuer(certificate=ca.anchor, key=ec.generate_private_key(ec.SECP256R1()))


def test_spiffe_id_refusals() -> None:
    with pytest.raises(ConfigError):
        spiffe_id("bad/domain", UEID)
    with pytest.raises(ConfigError):
        spiffe_id("example.org", b"")
