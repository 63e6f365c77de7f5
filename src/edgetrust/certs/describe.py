"""A person's view of a certificate: every field worth reading, DICE extensions decoded.

:func:`describe_certificate` returns a JSON-ready ``dict`` (hex for bytes, ISO 8601 for times)
that ``edgetrust certs show`` prints as JSON or as aligned text. It never raises for a
malformed extension: inspection must work on the certificates that fail validation, so a DICE
extension that does not decode is shown with its error instead of its value.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID

from edgetrust.certs.dice_ext import (
    DICE_EXTENSION_OIDS,
    MULTI_TCB_INFO_OID,
    OPEN_DICE_INPUT_OID,
    TCB_INFO_OID,
    UEID_OID,
    MultiTcbInfo,
    OpenDiceInput,
    TcbInfo,
    Ueid,
)
from edgetrust.certs.keys import describe_key, public_key_bytes, public_key_fingerprint
from edgetrust.certs.links import name_text
from edgetrust.errors import ASN1Error, Error

__all__ = ["describe_anchor", "describe_certificate"]

# cryptography attribute -> RFC 5280 name
_KEY_USAGES: Final = {
    "digital_signature": "digitalSignature",
    "content_commitment": "contentCommitment",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}
_DISPLAYED: Final = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        *DICE_EXTENSION_OIDS,
    }
)


def describe_certificate(certificate: x509.Certificate) -> dict[str, Any]:
    """Every field a person needs, JSON-ready (see the module doc). A certificate whose names or
    validity do not parse (cryptography parses them lazily) is an :class:`ASN1Error`."""
    try:
        return _describe(certificate)
    except ValueError as e:
        raise ASN1Error(f"the certificate does not parse: {e}") from e


def _describe(certificate: x509.Certificate) -> dict[str, Any]:
    try:
        key: object = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm) as e:
        key = f"unreadable public key ({e})"
    try:
        extensions: list[x509.Extension[x509.ExtensionType]] = list(certificate.extensions)
        extension_error = None
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        extensions, extension_error = [], str(e)
    by_oid = {e.oid: e for e in extensions}
    signature = certificate.signature_algorithm_oid
    return {
        "subject": name_text(certificate.subject),
        "issuer": name_text(certificate.issuer),
        "serial": f"{certificate.serial_number:x}",
        "version": certificate.version.name,
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "signature_algorithm": getattr(signature, "_name", None) or signature.dotted_string,
        "public_key": {
            "type": describe_key(key),
            "value": _key_value(key),
            "sha256": _key_fingerprint(key),
        },
        "sha256": hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        "self_signed": certificate.subject == certificate.issuer,
        "basic_constraints": _basic_constraints(by_oid.get(ExtensionOID.BASIC_CONSTRAINTS)),
        "key_usage": _key_usage(by_oid.get(ExtensionOID.KEY_USAGE)),
        "extended_key_usage": _extended_key_usage(by_oid.get(ExtensionOID.EXTENDED_KEY_USAGE)),
        "subject_alt_names": _alt_names(by_oid.get(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)),
        "subject_key_id": _key_id(by_oid.get(ExtensionOID.SUBJECT_KEY_IDENTIFIER)),
        "authority_key_id": _key_id(by_oid.get(ExtensionOID.AUTHORITY_KEY_IDENTIFIER)),
        "tcb_info": _dice(by_oid.get(TCB_INFO_OID), lambda raw: TcbInfo.from_der(raw).to_dict()),
        "multi_tcb_info": _dice(
            by_oid.get(MULTI_TCB_INFO_OID),
            lambda raw: [t.to_dict() for t in MultiTcbInfo.from_der(raw).entries],
        ),
        "ueid": _dice(by_oid.get(UEID_OID), lambda raw: Ueid.from_der(raw).hex()),
        "open_dice": _dice(
            by_oid.get(OPEN_DICE_INPUT_OID), lambda raw: OpenDiceInput.from_der(raw).to_dict()
        ),
        "other_extensions": [
            {"oid": e.oid.dotted_string, "name": _oid_name(e.oid), "critical": e.critical}
            for e in extensions
            if e.oid not in _DISPLAYED
        ],
        "extension_error": extension_error,
    }


def describe_anchor(anchor: object) -> str:
    """One line naming a trust anchor: a certificate's subject, or a key's type and hash."""
    if isinstance(anchor, x509.Certificate):
        return name_text(anchor.subject)
    return f"{describe_key(anchor)} public key sha256:{_key_fingerprint(anchor)[:16]}"


# --------------------------------------------------------------------------------------------


def _dice(extension: x509.Extension[x509.ExtensionType] | None, decode: Any) -> Any:
    if extension is None:
        return None
    value = extension.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else value.public_bytes()
    try:
        return {"critical": extension.critical, "value": decode(raw)}
    except Error as e:
        return {"critical": extension.critical, "error": e.message, "der": raw.hex()}


def _basic_constraints(extension: x509.Extension[Any] | None) -> dict[str, Any] | None:
    if extension is None:
        return None
    value: x509.BasicConstraints = extension.value
    return {"critical": extension.critical, "ca": value.ca, "path_length": value.path_length}


def _key_usage(extension: x509.Extension[Any] | None) -> dict[str, Any] | None:
    if extension is None:
        return None
    value: x509.KeyUsage = extension.value
    usages = [label for name, label in _KEY_USAGES.items() if getattr(value, name)]
    if value.key_agreement:
        usages += [
            label
            for name, label in (
                ("encipher_only", "encipherOnly"),
                ("decipher_only", "decipherOnly"),
            )
            if getattr(value, name)
        ]
    return {"critical": extension.critical, "usages": usages}


def _extended_key_usage(extension: x509.Extension[Any] | None) -> list[str] | None:
    if extension is None:
        return None
    return [_oid_name(oid) for oid in extension.value]


def _alt_names(extension: x509.Extension[Any] | None) -> list[str] | None:
    if extension is None:
        return None
    out: list[str] = []
    for general_name in extension.value:
        if isinstance(general_name, x509.DNSName):
            out.append(f"DNS:{general_name.value}")
        elif isinstance(general_name, x509.UniformResourceIdentifier):
            out.append(f"URI:{general_name.value}")
        elif isinstance(general_name, x509.IPAddress):
            out.append(f"IP:{general_name.value}")
        elif isinstance(general_name, x509.RFC822Name):
            out.append(f"email:{general_name.value}")
        elif isinstance(general_name, x509.DirectoryName):
            out.append(f"DirName:{name_text(general_name.value)}")
        else:
            out.append(type(general_name).__name__)
    return out


def _key_id(extension: x509.Extension[Any] | None) -> str | None:
    if extension is None:
        return None
    value = extension.value
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest.hex()
    identifier = value.key_identifier
    return None if identifier is None else bytes(identifier).hex()


def _key_value(key: object) -> str | None:
    try:
        return public_key_bytes(key).hex()  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return None


def _key_fingerprint(key: object) -> str:
    try:
        return public_key_fingerprint(key)  # type: ignore[arg-type]
    except (TypeError, ValueError, AttributeError):
        return ""


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", None)
    return oid.dotted_string if not name or name == "Unknown OID" else str(name)
