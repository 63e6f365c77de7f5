"""Certificate builders: DeviceID, DICE alias layers, operational mTLS client and server certs.

Every certificate gets the same strong skeleton (:func:`issue_certificate`): X.509 v3, a positive
serial (the DICE ID when one is given, else 159 random bits), basicConstraints critical, keyUsage
critical, subjectKeyIdentifier and authorityKeyIdentifier, and a hash that fits the issuer key
(P-256/SHA-256, P-384/SHA-384, Ed25519). On top:

* DeviceID (:func:`build_device_id_certificate`): from the device's CSR, whose signature is
  checked first; CA with keyCertSign (it signs the first alias certificate) and a pathLen that
  leaves room for the alias layers; carries tcg-dice-Ueid.
* Alias (:func:`build_alias_certificate`): one per DICE layer, signed by the previous layer's
  private key, carrying tcg-dice-TcbInfo **critical**; intermediate layers are CAs
  (keyCertSign), the last may be an end entity (digitalSignature).
* Operational (:func:`build_operational_certificate`): the short-lived mTLS client certificate
  issued after attestation: URI SAN ``spiffe://<domain>/device/<ueid-hex>``, clientAuth.
* Server (:func:`build_server_certificate`): an agent's TLS server certificate from the cluster CA.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgetrust.certs.dice_ext import (
    MultiTcbInfo,
    MultiTcbInfoExtension,
    TcbInfo,
    TcbInfoExtension,
    Ueid,
    UeidExtension,
)
from edgetrust.certs.dice_schema import DerExtension
from edgetrust.certs.keys import (
    PrivateKey,
    PublicKey,
    certificate_public_key,
    describe_key,
    signature_hash,
)
from edgetrust.errors import AlgorithmError, ConfigError, KeyFileError, SignatureError

__all__ = [
    "Issuer",
    "IssuerSource",
    "build_alias_certificate",
    "build_device_id_certificate",
    "build_operational_certificate",
    "build_server_certificate",
    "issue_certificate",
    "random_serial",
    "spiffe_id",
]

_SIGNING_KEY = (ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)
_OPERATIONAL_MAX_LIFETIME: Final = timedelta(days=1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Issuer:
    """What signs certificates: a CA certificate and its private key (they must match)."""

    certificate: x509.Certificate
    key: PrivateKey

    def __post_init__(self) -> None:
        if certificate_public_key(self.certificate) != self.key.public_key():
            raise KeyFileError(
                f"the private key does not belong to {self.certificate.subject.rfc4514_string()}"
            )


class IssuerSource(Protocol):
    """Anything with an :class:`Issuer` (a :class:`~edgetrust.certs.ca.CertificateAuthority`)."""

    @property
    def issuer(self) -> Issuer: ...


def random_serial() -> int:
    """A positive 159-bit serial number (20 DER bytes, as RFC 5280 allows at most)."""
    return secrets.randbits(158) | 1 << 158


def spiffe_id(trust_domain: str, ueid: bytes | Ueid) -> str:
    """``spiffe://<trust_domain>/device/<ueid-hex>``, the operational identity of a device."""
    raw = ueid.value if isinstance(ueid, Ueid) else ueid
    domain = trust_domain.strip().lower()
    if not domain or "/" in domain or ":" in domain or not domain.isascii():
        raise ConfigError(f"not a SPIFFE trust domain: {trust_domain!r}")
    if not raw:
        raise ConfigError("an empty UEID has no SPIFFE ID")
    return f"spiffe://{domain}/device/{raw.hex()}"


def issue_certificate(
    *,
    issuer_key: PrivateKey,
    issuer_name: x509.Name,
    subject_name: x509.Name,
    public_key: PublicKey,
    not_before: datetime,
    not_after: datetime,
    ca: bool,
    key_usage: x509.KeyUsage,
    path_length: int | None = None,
    serial: int | bytes | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    authority_key_id: bytes | None = None,
    subject_key_id: bytes | None = None,
) -> x509.Certificate:
    """The common skeleton of every certificate we issue (see the module doc)."""
    start, end = _period(not_before, not_after)
    if path_length is not None and (not ca or path_length < 0):
        raise ConfigError("pathLen needs a CA certificate and a non-negative value")
    ski = subject_key_id or x509.SubjectKeyIdentifier.from_public_key(public_key).digest
    aki = (
        x509.AuthorityKeyIdentifier(authority_key_id, None, None)
        if authority_key_id is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(_serial(serial))
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(key_usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier(ski), critical=False)
        .add_extension(aki, critical=False)
    )
    for extension, critical in extensions:
        # cryptography's builder encodes only its own types; ours go in as their DER value.
        encoded = (
            x509.UnrecognizedExtension(extension.oid, extension.public_bytes())
            if isinstance(extension, DerExtension)
            else extension
        )
        builder = builder.add_extension(encoded, critical=critical)
    try:
        return builder.sign(issuer_key, signature_hash(issuer_key))
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"cannot build certificate for {subject_name.rfc4514_string()}: {e}"
        ) from e


def build_device_id_certificate(
    *,
    csr: x509.CertificateSigningRequest,
    issuer: Issuer | IssuerSource,
    ueid: bytes | Ueid,
    not_before: datetime,
    not_after: datetime,
    path_length: int | None = None,
    subject: x509.Name | None = None,
    tcb_info: TcbInfo | None = None,
    serial: int | bytes | None = None,
) -> x509.Certificate:
    """The DeviceID certificate, signed at the factory, for the key in ``csr``.

    ``path_length`` is how many CA alias certificates may follow (``None``: unconstrained).
    The subject is the CSR's, or ``CN=DeviceID <ueid-hex>`` when the CSR's is empty.
    """
    signer = _issuer(issuer)
    key = _csr_key(csr)
    device_ueid = ueid if isinstance(ueid, Ueid) else Ueid(value=ueid)
    name = subject or (
        csr.subject if len(csr.subject) else _common_name(f"DeviceID {device_ueid.hex()}"[:64])
    )
    extensions: list[tuple[x509.ExtensionType, bool]] = [(UeidExtension(device_ueid), False)]
    if tcb_info is not None:
        extensions.append((TcbInfoExtension(tcb_info), True))
    return issue_certificate(
        issuer_key=signer.key,
        issuer_name=signer.certificate.subject,
        subject_name=name,
        public_key=key,
        not_before=not_before,
        not_after=not_after,
        ca=True,
        path_length=path_length,
        key_usage=_usage(key_cert_sign=True),
        serial=serial,
        extensions=extensions,
        authority_key_id=_subject_key_id(signer.certificate),
    )


def build_alias_certificate(
    *,
    subject_key: PublicKey | PrivateKey,
    issuer_key: PrivateKey,
    issuer_name: x509.Name,
    tcb_info: TcbInfo,
    is_ca: bool,
    not_before: datetime,
    not_after: datetime,
    serial: int | bytes | None = None,
    subject_name: x509.Name | None = None,
    path_length: int | None = None,
    multi_tcb_info: Sequence[TcbInfo] | None = None,
    issuer_key_id: bytes | None = None,
    subject_key_id: bytes | None = None,
) -> x509.Certificate:
    """The alias certificate of one DICE layer, signed by the previous layer's key.

    ``serial``: the DICE ID of the subject key (20 bytes, top bit clear) when the caller derives
    one, else random. The subject defaults to ``CN=Alias L<layer>, serialNumber=<serial hex>``,
    unique per key. ``issuer_key_id``/``subject_key_id`` override the key identifiers (Open DICE
    uses the DICE IDs there).
    """
    public_key = (
        subject_key.public_key()
        if isinstance(subject_key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
        else subject_key
    )
    if not isinstance(public_key, _SIGNING_KEY):
        raise AlgorithmError(f"alias keys must be EC or Ed25519, not {describe_key(public_key)}")
    number = _serial(serial)
    layer = "?" if tcb_info.layer is None else str(tcb_info.layer)
    name = subject_name or x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"Alias L{layer}"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, f"{number:040x}"),
        ]
    )
    extensions: list[tuple[x509.ExtensionType, bool]] = [(TcbInfoExtension(tcb_info), True)]
    if multi_tcb_info:
        extensions.append(
            (MultiTcbInfoExtension(MultiTcbInfo(entries=tuple(multi_tcb_info))), True)
        )
    return issue_certificate(
        issuer_key=issuer_key,
        issuer_name=issuer_name,
        subject_name=name,
        public_key=public_key,
        not_before=not_before,
        not_after=not_after,
        ca=is_ca,
        path_length=path_length if is_ca else None,
        key_usage=_usage(key_cert_sign=True) if is_ca else _usage(digital_signature=True),
        serial=number,
        extensions=extensions,
        authority_key_id=issuer_key_id,
        subject_key_id=subject_key_id,
    )


def build_operational_certificate(
    *,
    csr: x509.CertificateSigningRequest,
    issuer: Issuer | IssuerSource,
    spiffe_id: str,
    lifetime: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    subject: x509.Name | None = None,
    serial: int | bytes | None = None,
) -> x509.Certificate:
    """The short-lived mTLS client certificate of an onboarded device (an X.509-SVID).

    The CSR's signature is checked and its key must be EC (TLS stacks refuse Ed25519 client
    keys here). The subject defaults to the last path segment of the SPIFFE ID (the UEID hex);
    the CSR's subject is not copied (the device does not choose its name).
    """
    if not spiffe_id.startswith("spiffe://") or "/" not in spiffe_id.removeprefix("spiffe://"):
        raise ConfigError(f"not a SPIFFE ID: {spiffe_id!r}")
    if not timedelta(0) < lifetime <= _OPERATIONAL_MAX_LIFETIME:
        raise ConfigError(f"operational certificates live 0 < lifetime <= 1 day, not {lifetime}")
    signer = _issuer(issuer)
    key = _csr_key(csr)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AlgorithmError(f"operational (TLS) keys must be EC, not {describe_key(key)}")
    start = _now(now)
    name = subject or _common_name(spiffe_id.rsplit("/", 1)[-1][:64] or "device")
    return issue_certificate(
        issuer_key=signer.key,
        issuer_name=signer.certificate.subject,
        subject_name=name,
        public_key=key,
        not_before=start - timedelta(minutes=1),  # tolerate a little clock skew
        not_after=start + lifetime,
        ca=False,
        key_usage=_usage(digital_signature=True),
        serial=serial,
        extensions=[
            (x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_id)]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
        authority_key_id=_subject_key_id(signer.certificate),
    )


def build_server_certificate(
    *,
    public_key: PublicKey,
    issuer: Issuer | IssuerSource,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    lifetime: timedelta = timedelta(days=30),
    now: datetime | None = None,
    subject: x509.Name | None = None,
    client_auth: bool = False,
) -> x509.Certificate:
    """A TLS server certificate (serverAuth) for an agent or verifier, from the cluster CA.

    ``client_auth=True`` adds the clientAuth EKU, for a server that is also a mutual-TLS client
    with the same key (an agent following the verifier's revocation feed).
    """
    if not dns_names and not ip_addresses:
        raise ConfigError("a server certificate needs at least one DNS name or IP address")
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise AlgorithmError(f"server (TLS) keys must be EC, not {describe_key(public_key)}")
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    try:
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    except ValueError as e:
        raise ConfigError(f"not an IP address: {e}") from e
    signer = _issuer(issuer)
    start = _now(now)
    label = (list(dns_names) + list(ip_addresses))[0]
    return issue_certificate(
        issuer_key=signer.key,
        issuer_name=signer.certificate.subject,
        subject_name=subject or _common_name(label[:64]),
        public_key=public_key,
        not_before=start - timedelta(minutes=1),
        not_after=start + lifetime,
        ca=False,
        key_usage=_usage(digital_signature=True),
        extensions=[
            (x509.SubjectAlternativeName(names), False),
            (
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH]
                    + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
                ),
                False,
            ),
        ],
        authority_key_id=_subject_key_id(signer.certificate),
    )


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _issuer(source: Issuer | IssuerSource) -> Issuer:
    return source if isinstance(source, Issuer) else source.issuer


def _csr_key(csr: x509.CertificateSigningRequest) -> PublicKey:
    """The CSR's public key, after checking the CSR is signed by it (proof of possession)."""
    try:
        valid = csr.is_signature_valid
        key = csr.public_key()
    except (ValueError, TypeError) as e:
        raise SignatureError(f"the CSR cannot be checked: {e}") from e
    if not valid:
        raise SignatureError("the CSR's signature does not verify with the key it carries")
    if not isinstance(key, _SIGNING_KEY):
        raise AlgorithmError(f"unsupported CSR key type: {describe_key(key)}")
    return key


def _subject_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return None


def _serial(serial: int | bytes | None) -> int:
    if serial is None:
        return random_serial()
    number = int.from_bytes(serial, "big") if isinstance(serial, bytes) else serial
    if not isinstance(number, int) or number <= 0 or number.bit_length() > 159:
        raise ConfigError(f"a serial number must be positive and at most 159 bits: {serial!r}")
    return number


def _period(not_before: datetime, not_after: datetime) -> tuple[datetime, datetime]:
    for value in (not_before, not_after):
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ConfigError("certificate validity times must be timezone-aware datetimes")
    if not_after <= not_before:
        raise ConfigError(f"not_after {not_after} is not after not_before {not_before}")
    return not_before.astimezone(UTC), not_after.astimezone(UTC)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")
    return now


def _usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _common_name(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])
