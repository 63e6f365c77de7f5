"""Reading and writing certificates, CSRs, keys and trust anchors: PEM or DER, one or many.

Two layers, by who is at fault:

* ``load_*(data: bytes)`` parse bytes that may come from a device or a peer: malformed input is
  an :class:`~edgetrust.errors.ASN1Error` (evidence), an unsupported key an
  :class:`~edgetrust.errors.AlgorithmError`.
* ``read_*(path)`` read the operator's files: a missing, unreadable or malformed file is a
  :class:`~edgetrust.errors.KeyFileError` naming the path. Private keys must not be readable by
  group or others (``chmod 600``); ``write_private_key`` creates them 0600.

A file may hold several PEM blocks, or several DER certificates back to back.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final, TypeAlias, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning

from edgetrust.certs.keys import PrivateKey, PublicKey, describe_key
from edgetrust.errors import AlgorithmError, ASN1Error, EvidenceError, KeyFileError

__all__ = [
    "TrustAnchor",
    "certificates_pem",
    "load_certificate",
    "load_certificates",
    "load_csr",
    "load_private_key",
    "load_public_key",
    "load_trust_anchors",
    "private_key_pem",
    "read_certificate",
    "read_certificates",
    "read_csr",
    "read_private_key",
    "read_trust_anchors",
    "write_certificates",
    "write_private_key",
]

#: A trust anchor: a certificate, or a bare public key (many DICE roots are provisioned as a key).
TrustAnchor: TypeAlias = x509.Certificate | PublicKey

_PEM_BLOCK: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_PARSE_ERRORS: Final = (
    ValueError,
    TypeError,
    UnsupportedAlgorithm,
    x509.InvalidVersion,
    CryptographyDeprecationWarning,
)
_MAX_FILE: Final = 1 << 20  # no certificate or key file is anywhere near 1 MiB
_T = TypeVar("_T")


# --------------------------------------------------------------------------------------------
# Bytes
# --------------------------------------------------------------------------------------------


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM blocks, or DER certificates back to back."""
    if _is_pem(data):
        blocks = _pem_blocks(data)
        other = sorted({label for label, _ in blocks if label != "CERTIFICATE"})
        if other:
            raise ASN1Error(f"unexpected PEM block(s) among certificates: {', '.join(other)}")
        return [_parse(_pem_certificate, block, "certificate") for _, block in blocks]
    return [_parse(_der_certificate, der, "certificate") for der in _der_items(data)]


def load_certificate(data: bytes) -> x509.Certificate:
    """Exactly one certificate (PEM or DER)."""
    certificates = load_certificates(data)
    if len(certificates) != 1:
        raise ASN1Error(f"expected one certificate, found {len(certificates)}")
    return certificates[0]


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """A PKCS#10 certificate signing request (PEM or DER). Its signature is not checked here."""
    if _is_pem(data):
        return _parse(x509.load_pem_x509_csr, data.strip(), "certificate signing request")
    return _parse(x509.load_der_x509_csr, data, "certificate signing request")


def load_public_key(data: bytes) -> PublicKey:
    """A SubjectPublicKeyInfo (PEM ``PUBLIC KEY`` or DER) of a supported type."""
    if _is_pem(data):
        key = _parse(serialization.load_pem_public_key, data.strip(), "public key")
    else:
        key = _parse(serialization.load_der_public_key, data, "public key")
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise AlgorithmError(f"unsupported public key type: {describe_key(key)}")
    return key


def load_private_key(data: bytes) -> PrivateKey:
    """An unencrypted PKCS#8 (or SEC1) private key, PEM or DER: EC or Ed25519."""
    try:
        if _is_pem(data):
            key = serialization.load_pem_private_key(data.strip(), password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except TypeError as e:
        raise KeyFileError("encrypted private keys are not supported") from e
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ASN1Error(f"not a private key: {_first_line(e)}") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise AlgorithmError(f"unsupported private key type: {describe_key(key)}")
    return key


def load_trust_anchors(data: bytes) -> list[TrustAnchor]:
    """Certificates and/or bare public keys (PEM blocks, or one DER certificate or key)."""
    anchors: list[TrustAnchor] = []
    if _is_pem(data):
        for label, block in _pem_blocks(data):
            if label == "CERTIFICATE":
                anchors.append(_parse(_pem_certificate, block, "certificate"))
            elif label == "PUBLIC KEY":
                anchors.append(load_public_key(block))
            else:
                raise ASN1Error(f"a trust anchor must be a CERTIFICATE or PUBLIC KEY, not {label}")
        return anchors
    try:
        return list(load_certificates(data))
    except ASN1Error:
        pass
    try:
        return [load_public_key(data)]
    except ASN1Error as e:
        raise ASN1Error("not a certificate or a public key (PEM or DER)") from e


def certificates_pem(certificates: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM (the file itself is what protects it: mode 0600)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def read_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    return _from_file(path, load_certificates)


def read_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    return _from_file(path, load_certificate)


def read_csr(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    return _from_file(path, load_csr)


def read_trust_anchors(path: str | os.PathLike[str]) -> list[TrustAnchor]:
    return _from_file(path, load_trust_anchors)


def read_private_key(path: str | os.PathLike[str], *, check_mode: bool = True) -> PrivateKey:
    """A private key file; refused when group or others may read it (unless ``check_mode``)."""
    file = Path(path)
    if check_mode:
        try:
            mode = file.stat().st_mode
        except OSError as e:
            raise KeyFileError(f"{file}: {e.strerror or e}") from e
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(
                f"{file}: private key is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o})",
                hint=f"chmod 600 {file}",
            )
    return _from_file(file, load_private_key)


def write_private_key(
    path: str | os.PathLike[str], key: PrivateKey, *, overwrite: bool = False
) -> None:
    """Write ``key`` as PKCS#8 PEM, created with mode 0600 (never briefly readable by others)."""
    file = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    try:
        fd = os.open(file, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, private_key_pem(key))
        finally:
            os.close(fd)
    except FileExistsError as e:
        raise KeyFileError(f"{file}: already exists; refusing to overwrite a key") from e
    except OSError as e:
        raise KeyFileError(f"{file}: cannot write key: {e.strerror or e}") from e


def write_certificates(
    path: str | os.PathLike[str], certificates: Iterable[x509.Certificate]
) -> None:
    file = Path(path)
    try:
        file.write_bytes(certificates_pem(certificates))
    except OSError as e:
        raise KeyFileError(f"{file}: cannot write: {e.strerror or e}") from e


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


def _from_file(path: str | os.PathLike[str], load: Callable[[bytes], _T]) -> _T:
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(_MAX_FILE + 1)
    except OSError as e:
        raise KeyFileError(f"{file}: {e.strerror or e}") from e
    if len(data) > _MAX_FILE:
        raise KeyFileError(f"{file}: larger than {_MAX_FILE} bytes")
    if not data.strip():
        raise KeyFileError(f"{file}: empty file")
    try:
        return load(data)
    except EvidenceError as e:
        raise KeyFileError(f"{file}: {e.message}") from e


def _is_pem(data: bytes) -> bool:
    return data.lstrip().startswith(b"-----BEGIN ")


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    blocks = [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    if not blocks:
        raise ASN1Error("no complete PEM block found")
    return blocks


def _der_items(data: bytes) -> list[bytes]:
    """Split back-to-back DER values (each a SEQUENCE) by their length headers."""
    items: list[bytes] = []
    offset = 0
    while offset < len(data):
        if data[offset] != 0x30:
            raise ASN1Error(f"not DER: expected a SEQUENCE at byte {offset}")
        if offset + 2 > len(data):
            raise ASN1Error("truncated DER header")
        first = data[offset + 1]
        if first < 0x80:
            header, length = 2, first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or offset + 2 + count > len(data):
                raise ASN1Error("bad DER length")
            header = 2 + count
            length = int.from_bytes(data[offset + 2 : offset + header], "big")
        end = offset + header + length
        if end > len(data):
            raise ASN1Error(f"truncated DER value: {end - len(data)} bytes missing")
        items.append(data[offset:end])
        offset = end
    if not items:
        raise ASN1Error("no certificate found (empty input)")
    return items


def _pem_certificate(data: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        # cryptography only warns about what RFC 5280 forbids (a serial that is not positive).
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        return _complete(x509.load_pem_x509_certificate(data))


def _der_certificate(data: bytes) -> x509.Certificate:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CryptographyDeprecationWarning)
        return _complete(x509.load_der_x509_certificate(data))


def _complete(certificate: x509.Certificate) -> x509.Certificate:
    """Parse now what cryptography parses lazily (names, validity, extensions), so that a
    damaged certificate is refused when it is loaded rather than in the middle of a check."""
    try:
        certificate.subject, certificate.issuer  # noqa: B018
        certificate.not_valid_before_utc, certificate.not_valid_after_utc  # noqa: B018
        certificate.extensions  # noqa: B018
    except (x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise ValueError(str(e)) from e
    return certificate


def _parse(parser: Callable[[bytes], _T], data: bytes, what: str) -> _T:
    try:
        return parser(data)
    except _PARSE_ERRORS as e:
        raise ASN1Error(f"not a valid {what}: {_first_line(e)}") from e


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:160] if text else type(error).__name__
