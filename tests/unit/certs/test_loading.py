"""Loading certificates, keys and trust anchors: PEM or DER, one or many; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.certs.loading import (
    certificates_pem,
    load_certificate,
    load_certificates,
    load_private_key,
    load_public_key,
    load_trust_anchors,
    read_certificates,
    read_private_key,
    read_trust_anchors,
    write_private_key,
)
from edgetrust.errors import AlgorithmError, ASN1Error, KeyFileError
from tests.unit.certs.factory import build

DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


@pytest.fixture(scope="module")
def chain() -> list:  # type: ignore[type-arg]
    return build("p256").certs


def test_pem_bundle_and_concatenated_der(chain: list) -> None:  # type: ignore[type-arg]
    assert load_certificates(certificates_pem(chain)) == chain
    assert load_certificates(b"".join(c.public_bytes(DER) for c in chain)) == chain
    assert load_certificate(chain[0].public_bytes(DER)) == chain[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"garbage", "not DER"),
        (b"\x30\x82\x01", "bad DER length|truncated"),
        (b"\x30\x05\x02\x01", "truncated DER value"),
        (b"\x30\x03\x02\x01\x01", "not a valid certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n", "no complete PEM block"),
        (b"", "empty input"),
    ],
)
def test_malformed_certificates(data: bytes, message: str) -> None:
    with pytest.raises(ASN1Error, match=message):
        load_certificates(data)


def test_a_key_among_certificates_is_refused(chain: list) -> None:  # type: ignore[type-arg]
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = certificates_pem(chain[:1]) + key.public_bytes(serialization.Encoding.PEM, SPKI)
    with pytest.raises(ASN1Error, match="PUBLIC KEY"):
        load_certificates(pem)
    anchors = load_trust_anchors(pem)
    assert anchors == [chain[0], key]


def test_trust_anchors_in_every_form(chain: list) -> None:  # type: ignore[type-arg]
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    assert load_trust_anchors(key.public_bytes(DER, SPKI)) == [key]
    assert load_trust_anchors(chain[0].public_bytes(DER)) == [chain[0]]
    with pytest.raises(ASN1Error, match="not a certificate or a public key"):
        load_trust_anchors(b"\x30\x03\x02\x01\x01")
    private = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ASN1Error, match="CERTIFICATE or PUBLIC KEY, not PRIVATE KEY"):
        load_trust_anchors(private)


def test_public_and_private_keys(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    write_private_key(tmp_path / "k.pem", key)
    assert read_private_key(tmp_path / "k.pem").private_numbers() == key.private_numbers()  # type: ignore[union-attr]
    with pytest.raises(KeyFileError, match="already exists"):
        write_private_key(tmp_path / "k.pem", key)
    assert load_public_key(key.public_key().public_bytes(DER, SPKI)) == key.public_key()
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KeyFileError, match="encrypted"):
        load_private_key(encrypted)
    with pytest.raises(ASN1Error, match="not a private key"):
        load_private_key(b"junk")


def test_unsupported_key_types() -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519

    x = x25519.X25519PrivateKey.generate()
    with pytest.raises(AlgorithmError):
        load_public_key(x.public_key().public_bytes(DER, SPKI))
    raw = x.private_bytes(DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(AlgorithmError):
        load_private_key(raw)


def test_files(tmp_path: Path, chain: list) -> None:  # type: ignore[type-arg]
    with pytest.raises(KeyFileError, match="No such file"):
        read_certificates(tmp_path / "missing.pem")
    (tmp_path / "empty.pem").write_bytes(b"\n")
    with pytest.raises(KeyFileError, match="empty file"):
        read_trust_anchors(tmp_path / "empty.pem")
    (tmp_path / "bad.pem").write_bytes(b"nonsense")
    with pytest.raises(KeyFileError, match=r"bad\.pem: not DER"):
        read_certificates(tmp_path / "bad.pem")
    (tmp_path / "chain.pem").write_bytes(certificates_pem(chain))
    assert read_certificates(tmp_path / "chain.pem") == chain
