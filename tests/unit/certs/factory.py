"""Builds DICE test chains (root -> DeviceID -> alias1 -> alias2), good or with one defect."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from edgetrust.certs.builders import issue_certificate
from edgetrust.certs.dice_ext import (
    FWID,
    OperationalFlags,
    TcbInfo,
    TcbInfoExtension,
    Ueid,
    UeidExtension,
)
from edgetrust.certs.keys import PrivateKey

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOT_BEFORE = NOW - timedelta(days=30)
NOT_AFTER = NOW + timedelta(days=3650)
UEID = bytes.fromhex("0102030405060708090a0b0c0d0e0f10")


def key(kind: str) -> PrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP384R1() if kind == "p384" else ec.SECP256R1())


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def tcb(layer: int, version: str = "1.0.0", svn: int = 1) -> TcbInfo:
    return TcbInfo(
        vendor="edgetrust-test",
        model="sim",
        version=version,
        svn=svn,
        layer=layer,
        fwids=(FWID.of(bytes([layer]) * 32),),
        flags=OperationalFlags(),
    )


@dataclass
class Spec:
    """One certificate of the chain; change fields to inject a defect."""

    subject: str
    issuer: str
    ca: bool = True
    cert_sign: bool = True
    path_length: int | None = None
    not_before: datetime = NOT_BEFORE
    not_after: datetime = NOT_AFTER
    extensions: list[tuple[x509.ExtensionType, bool]] = field(default_factory=list)
    wrong_signer: bool = False  # signed by an unrelated key (bad signature)


@dataclass
class Chain:
    root: x509.Certificate
    root_key: PrivateKey
    certs: list[x509.Certificate]  # leaf first: alias2, alias1, deviceid
    keys: list[PrivateKey]  # leaf first

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0]


def specs() -> dict[str, Spec]:
    """The default 4-layer chain: root -> DeviceID (UEID) -> alias1 (CA, TcbInfo) -> alias2."""
    return {
        "root": Spec(subject="Test Root", issuer="Test Root"),
        "deviceid": Spec(
            subject="DeviceID",
            issuer="Test Root",
            extensions=[(UeidExtension(Ueid(value=UEID)), False)],
        ),
        "alias1": Spec(
            subject="Alias L1",
            issuer="DeviceID",
            extensions=[(TcbInfoExtension(tcb(1, "1.0.0")), True)],
        ),
        "alias2": Spec(
            subject="Alias L2",
            issuer="Alias L1",
            ca=False,
            cert_sign=False,
            extensions=[(TcbInfoExtension(tcb(2, "2.1.0", svn=7)), True)],
        ),
    }


def build(kind: str = "p256", layers: dict[str, Spec] | None = None) -> Chain:
    """Build the chain of ``layers`` (from :func:`specs`, possibly edited) with ``kind`` keys."""
    layers = layers or specs()
    order = ["root", "deviceid", "alias1", "alias2"]
    keys = {n: key(kind) for n in order}
    certs: dict[str, x509.Certificate] = {}
    previous = "root"
    for layer in order:
        spec = layers[layer]
        signer = previous if layer != "root" else "root"
        signing_key = key(kind) if spec.wrong_signer else keys[signer]
        certs[layer] = issue_certificate(
            issuer_key=signing_key,
            issuer_name=name(spec.issuer),
            subject_name=name(spec.subject),
            public_key=keys[layer].public_key(),
            not_before=spec.not_before,
            not_after=spec.not_after,
            ca=spec.ca,
            path_length=spec.path_length,
            key_usage=usage(cert_sign=spec.cert_sign),
            extensions=spec.extensions,
        )
        previous = layer
    return Chain(
        root=certs["root"],
        root_key=keys["root"],
        certs=[certs["alias2"], certs["alias1"], certs["deviceid"]],
        keys=[keys["alias2"], keys["alias1"], keys["deviceid"]],
    )


def raw_extension(oid: x509.ObjectIdentifier, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(oid, value)


def riot_composite_device_id(device_key: PrivateKey, fwid: bytes) -> bytes:
    """The old Microsoft RIoT extension value under 2.23.133.5.4.1:
    SEQUENCE { INTEGER 1, SubjectPublicKeyInfo (DeviceID key), SEQUENCE { OID sha256, fwid } }."""
    spki = device_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    sha256 = bytes.fromhex("0609608648016503040201")
    fw = tlv(0x30, sha256 + tlv(0x04, fwid))
    return tlv(0x30, tlv(0x02, b"\x01") + spki + fw)


def tlv(tag: int, content: bytes) -> bytes:
    """A DER TLV with a definite, minimal length."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content
