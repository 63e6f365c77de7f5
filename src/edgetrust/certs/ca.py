"""Certificate authorities: the manufacturer CA (DeviceID certificates) and the cluster CA
(operational mTLS certificates). A self-signed root and an optional intermediate.

Defaults are the strong ones: P-256 (P-384 on request) keys, basicConstraints critical with
cA TRUE, keyUsage critical with exactly keyCertSign and cRLSign, subject and authority key
identifiers, 159-bit random serials. ``root_path_length`` / ``intermediate_path_length`` bound
how deep the hierarchy below may go; they default to unconstrained because a DICE chain under
the manufacturer CA is as deep as the device's boot layers (DeviceID and alias certificates are
all CAs) -- bound them for a cluster CA (``intermediate_path_length=0``).

On disk (:meth:`CertificateAuthority.save` / :meth:`~CertificateAuthority.load`), in a 0700
directory::

    root-cert.pem           the root certificate (the trust anchor to hand to verifiers)
    root-key.pem            its PKCS#8 key, 0600 -- may be moved offline once an intermediate
                            exists; loading then works without it
    intermediate-cert.pem   the intermediate certificate (optional)
    intermediate-key.pem    its key, 0600
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from edgetrust.certs.builders import Issuer, issue_certificate
from edgetrust.certs.keys import KeyAlgorithm, PrivateKey, generate_private_key
from edgetrust.certs.loading import (
    read_certificate,
    read_private_key,
    write_certificates,
    write_private_key,
)
from edgetrust.errors import ConfigError, KeyFileError, WorkspaceError

__all__ = [
    "INTERMEDIATE_CERT_FILE",
    "INTERMEDIATE_KEY_FILE",
    "ROOT_CERT_FILE",
    "ROOT_KEY_FILE",
    "CertificateAuthority",
    "parse_subject",
]

ROOT_CERT_FILE: Final = "root-cert.pem"
ROOT_KEY_FILE: Final = "root-key.pem"
INTERMEDIATE_CERT_FILE: Final = "intermediate-cert.pem"
INTERMEDIATE_KEY_FILE: Final = "intermediate-key.pem"

DEFAULT_ROOT_SUBJECT: Final = "CN=edgetrust manufacturer root CA,O=edgetrust"
ROOT_VALIDITY: Final = timedelta(days=20 * 365)
INTERMEDIATE_VALIDITY: Final = timedelta(days=10 * 365)
_CA_KEY_ALGORITHMS: Final = (KeyAlgorithm.P256, KeyAlgorithm.P384)
_CA_USAGE: Final = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def parse_subject(subject: str | x509.Name) -> x509.Name:
    """A distinguished name from an RFC 4514 string (``CN=...,O=...``) or a Name."""
    if isinstance(subject, x509.Name):
        name = subject
    else:
        try:
            name = x509.Name.from_rfc4514_string(subject)
        except ValueError as e:
            raise ConfigError(f"not an RFC 4514 distinguished name: {subject!r} ({e})") from e
    if not len(name):
        raise ConfigError("a CA subject must not be empty")
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateAuthority:
    """A root certificate (key optional once offline) and an optional intermediate."""

    root_certificate: x509.Certificate
    root_key: PrivateKey | None
    intermediate: Issuer | None = None

    def __post_init__(self) -> None:
        if self.root_key is None and self.intermediate is None:
            raise WorkspaceError("a CA needs the root key or an intermediate to issue with")
        if self.root_key is not None:
            Issuer(certificate=self.root_certificate, key=self.root_key)  # key matches cert
        if self.intermediate is not None:
            try:
                self.intermediate.certificate.verify_directly_issued_by(self.root_certificate)
            except (ValueError, TypeError, InvalidSignature) as e:
                raise WorkspaceError("the intermediate is not issued by the root") from e

    @property
    def issuer(self) -> Issuer:
        """What signs: the intermediate when there is one, else the root."""
        if self.intermediate is not None:
            return self.intermediate
        return self.root

    @property
    def root(self) -> Issuer:
        if self.root_key is None:
            raise WorkspaceError("the root key is not available (kept offline)")
        return Issuer(certificate=self.root_certificate, key=self.root_key)

    @property
    def anchor(self) -> x509.Certificate:
        """The trust anchor verifiers configure: the root certificate."""
        return self.root_certificate

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """The certificates above what we issue, issuer first: (intermediate,) root."""
        if self.intermediate is None:
            return (self.root_certificate,)
        return (self.intermediate.certificate, self.root_certificate)

    @classmethod
    def create(
        cls,
        *,
        subject: str | x509.Name = DEFAULT_ROOT_SUBJECT,
        key_algorithm: KeyAlgorithm | str = KeyAlgorithm.P256,
        intermediate: bool = False,
        intermediate_subject: str | x509.Name | None = None,
        now: datetime | None = None,
        root_validity: timedelta = ROOT_VALIDITY,
        intermediate_validity: timedelta = INTERMEDIATE_VALIDITY,
        root_path_length: int | None = None,
        intermediate_path_length: int | None = None,
    ) -> CertificateAuthority:
        """A new root (and intermediate); keys are generated here and never leave the object."""
        try:
            algorithm = KeyAlgorithm(key_algorithm)
        except ValueError as e:
            raise ConfigError(f"unknown CA key algorithm {key_algorithm!r}") from e
        if algorithm not in _CA_KEY_ALGORITHMS:
            raise ConfigError(f"CA keys are p256 or p384, not {algorithm}")
        start = (now or datetime.now(UTC)) - timedelta(minutes=5)
        root_name = parse_subject(subject)
        root_key = generate_private_key(algorithm)
        root_cert = _ca_certificate(
            issuer_key=root_key,
            issuer_name=root_name,
            subject=root_name,
            key=root_key,
            start=start,
            validity=root_validity,
            path_length=root_path_length,
        )
        middle: Issuer | None = None
        if intermediate:
            middle_name = parse_subject(
                intermediate_subject or _derived_subject(root_name, "intermediate CA")
            )
            if middle_name == root_name:
                raise ConfigError("the intermediate's subject must differ from the root's")
            middle_key = generate_private_key(algorithm)
            middle_cert = _ca_certificate(
                issuer_key=root_key,
                issuer_name=root_name,
                subject=middle_name,
                key=middle_key,
                start=start,
                validity=min(intermediate_validity, root_validity),
                path_length=intermediate_path_length,
            )
            middle = Issuer(certificate=middle_cert, key=middle_key)
        return cls(root_certificate=root_cert, root_key=root_key, intermediate=middle)

    def save(self, directory: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
        """Write the CA to ``directory`` (created 0700); keys 0600. Returns the files written."""
        target = Path(directory)
        try:
            target.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise WorkspaceError(f"{target}: cannot create directory: {e.strerror or e}") from e
        existing = [
            target / n
            for n in (ROOT_CERT_FILE, ROOT_KEY_FILE, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE)
            if (target / n).exists()
        ]
        if existing and not overwrite:
            raise WorkspaceError(
                f"{target} already holds a CA ({existing[0].name}); refusing to overwrite"
            )
        written: list[Path] = []
        if self.root_key is not None:
            write_private_key(target / ROOT_KEY_FILE, self.root_key, overwrite=overwrite)
            written.append(target / ROOT_KEY_FILE)
        write_certificates(target / ROOT_CERT_FILE, [self.root_certificate])
        written.append(target / ROOT_CERT_FILE)
        if self.intermediate is not None:
            write_private_key(
                target / INTERMEDIATE_KEY_FILE, self.intermediate.key, overwrite=overwrite
            )
            write_certificates(target / INTERMEDIATE_CERT_FILE, [self.intermediate.certificate])
            written += [target / INTERMEDIATE_KEY_FILE, target / INTERMEDIATE_CERT_FILE]
        return written

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> CertificateAuthority:
        """Read a CA written by :meth:`save`. Missing pieces are a :class:`WorkspaceError`;
        unreadable, corrupt or group/world-readable key files a :class:`KeyFileError`."""
        source = Path(directory)
        if not source.is_dir():
            raise WorkspaceError(f"{source}: no such CA directory")
        if not (source / ROOT_CERT_FILE).exists():
            raise WorkspaceError(f"{source}: {ROOT_CERT_FILE} is missing; not a CA directory")
        root_cert = read_certificate(source / ROOT_CERT_FILE)
        root_key = (
            read_private_key(source / ROOT_KEY_FILE) if (source / ROOT_KEY_FILE).exists() else None
        )
        middle: Issuer | None = None
        has_cert = (source / INTERMEDIATE_CERT_FILE).exists()
        has_key = (source / INTERMEDIATE_KEY_FILE).exists()
        if has_cert != has_key:
            missing = INTERMEDIATE_KEY_FILE if has_cert else INTERMEDIATE_CERT_FILE
            raise WorkspaceError(f"{source}: {missing} is missing")
        if has_cert:
            middle = Issuer(
                certificate=read_certificate(source / INTERMEDIATE_CERT_FILE),
                key=read_private_key(source / INTERMEDIATE_KEY_FILE),
            )
        if root_key is None and middle is None:
            raise WorkspaceError(
                f"{source}: {ROOT_KEY_FILE} is missing and there is no intermediate"
            )
        try:
            return cls(root_certificate=root_cert, root_key=root_key, intermediate=middle)
        except KeyFileError as e:
            raise KeyFileError(f"{source}: {e.message}") from e


def _ca_certificate(
    *,
    issuer_key: PrivateKey,
    issuer_name: x509.Name,
    subject: x509.Name,
    key: PrivateKey,
    start: datetime,
    validity: timedelta,
    path_length: int | None,
) -> x509.Certificate:
    return issue_certificate(
        issuer_key=issuer_key,
        issuer_name=issuer_name,
        subject_name=subject,
        public_key=key.public_key(),
        not_before=start,
        not_after=start + validity,
        ca=True,
        path_length=path_length,
        key_usage=_CA_USAGE,
    )


def _derived_subject(root: x509.Name, common_name: str) -> x509.Name:
    """The root's name with its CN replaced in place (or appended as the most specific RDN)."""
    cn = x509.NameAttribute(NameOID.COMMON_NAME, common_name)
    attributes = [cn if a.oid == NameOID.COMMON_NAME else a for a in root]
    if cn not in attributes:
        attributes.append(cn)
    return x509.Name(attributes)
