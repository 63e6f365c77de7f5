"""The path rules edgetrust applies link by link (RFC 5280 section 6.1 basics, DICE-strict).

Used on their own for chains cryptography's validator refuses to handle (Ed25519: Open DICE),
and as the diagnosis when cryptography rejects a P-256/P-384 chain, so that both kinds of chain
fail with the same error for the same defect. Pure: no I/O, ``now`` is a parameter.

The checks run in this order, and the first failure wins (``check_path``):

1. trust anchor: which anchor signed the top certificate (:func:`select_anchor`);
2. signatures, from the anchor down to the leaf -> ``SignatureError``;
3. validity at ``now`` of every certificate, anchor certificate included -> ``ExpiredError`` /
   ``NotYetValidError``;
4. basicConstraints / keyUsage / pathLen of every issuer -> ``BasicConstraintsError``;
5. critical extensions we do not understand -> ``UnknownCriticalExtensionError``.

Name chaining is established before any of these, when the certificates are put in order.

Stricter than RFC 5280 in one respect, on purpose: a certificate with ``cA`` TRUE counts against
its issuers' pathLen even when it is the leaf. In a DICE chain a CA leaf exists to certify the
next layer, which would break the constraint anyway; a pathLen-0 root signing CA certificates
(the Project Cerberus test root) is therefore refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, NamedTuple

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from edgetrust.certs.dice_ext import DICE_EXTENSION_OIDS
from edgetrust.certs.keys import PublicKey, certificate_public_key, verify_certificate_signature
from edgetrust.certs.loading import TrustAnchor
from edgetrust.errors import (
    BasicConstraintsError,
    CertificateError,
    ExpiredError,
    NotYetValidError,
    SignatureError,
    UnknownCriticalExtensionError,
    UntrustedAnchorError,
)

__all__ = [
    "UNDERSTOOD_CRITICAL",
    "Facts",
    "check_constraints",
    "check_critical_extensions",
    "check_path",
    "check_signatures",
    "check_validity",
    "describe",
    "extensions",
    "facts",
    "name_text",
    "select_anchor",
]

#: Critical extensions edgetrust understands. Anything else marked critical is refused: name
#: constraints and certificate policies are not processed here, so they may not be critical.
UNDERSTOOD_CRITICAL: Final = frozenset(
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


_ATTRIBUTE_NAMES: Final = {NameOID.SERIAL_NUMBER: "serialNumber"}


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorMatch:
    """The trust anchor that signed the top certificate of a path."""

    anchor: TrustAnchor
    public_key: PublicKey
    certificate: x509.Certificate | None


def check_path(
    path: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    now: datetime,
    path_facts: Sequence[Facts] | None = None,
) -> AnchorMatch:
    """Every rule, in the documented order, on ``path`` (leaf first, names already chained)."""
    match = select_anchor(path[-1], anchors)
    check_signatures(path)
    check_validity(path, match.certificate, now)
    found = path_facts if path_facts is not None else [facts(c) for c in path]
    check_constraints(path, match.certificate, found)
    check_critical_extensions(path, found)
    return match


def select_anchor(top: x509.Certificate, anchors: Sequence[TrustAnchor]) -> AnchorMatch:
    """The anchor whose key verifies ``top``'s signature.

    Certificate anchors are candidates when their subject is ``top``'s issuer; bare-key anchors
    always are. When a certificate anchor has the right name but its key does not verify the
    signature, that is a :class:`SignatureError` (the issuer is identified, the signature is
    wrong); when no anchor has the name and no bare key verifies, :class:`UntrustedAnchorError`.
    """
    named = [a for a in anchors if isinstance(a, x509.Certificate) and a.subject == top.issuer]
    keys = [a for a in anchors if not isinstance(a, x509.Certificate)]
    failure: SignatureError | None = None
    for anchor in named:
        key = certificate_public_key(anchor)
        try:
            verify_certificate_signature(top, key)
        except SignatureError as e:
            failure = failure or e
            continue
        return AnchorMatch(anchor=anchor, public_key=key, certificate=anchor)
    for key in keys:
        try:
            verify_certificate_signature(top, key)
        except SignatureError:
            continue
        return AnchorMatch(anchor=key, public_key=key, certificate=None)
    if failure is not None:
        raise SignatureError(
            f"{describe(top)} names trust anchor {name_text(top.issuer)} as its issuer "
            f"but is not signed by its key"
        ) from failure
    if top.issuer == top.subject:
        raise UntrustedAnchorError(
            f"the chain ends at self-signed {describe(top)}, which is not a trust anchor"
        )
    raise UntrustedAnchorError(
        f"no trust anchor issued {describe(top)}: none is named "
        f"{name_text(top.issuer) or '(empty)'} and no anchor key verifies its signature"
    )


def check_signatures(path: Sequence[x509.Certificate]) -> None:
    """Each certificate below the top is signed by the key of the one above it."""
    for index in range(len(path) - 2, -1, -1):
        issuer = path[index + 1]
        try:
            verify_certificate_signature(path[index], certificate_public_key(issuer))
        except SignatureError as e:
            raise SignatureError(
                f"the signature of {describe(path[index])} does not verify with the key of "
                f"its issuer {describe(issuer)}"
            ) from e


def check_validity(
    path: Sequence[x509.Certificate], anchor: x509.Certificate | None, now: datetime
) -> None:
    """Every certificate (and the anchor certificate) is valid at ``now``."""
    for certificate in [*([anchor] if anchor is not None else []), *reversed(path)]:
        if now < certificate.not_valid_before_utc:
            raise NotYetValidError(
                f"{describe(certificate)} is not valid before "
                f"{certificate.not_valid_before_utc.isoformat()} (checked at {now.isoformat()})"
            )
        if now > certificate.not_valid_after_utc:
            raise ExpiredError(
                f"{describe(certificate)} expired at "
                f"{certificate.not_valid_after_utc.isoformat()} (checked at {now.isoformat()})"
            )


class Facts(NamedTuple):
    """What the rules read from one certificate's extensions, gathered in one pass (a tuple:
    this is on the hot path of every validation)."""

    basic_constraints: x509.BasicConstraints | None
    key_usage: x509.KeyUsage | None
    #: The first critical extension edgetrust does not process, if any.
    unknown_critical: x509.ObjectIdentifier | None
    #: The raw values of the DICE extensions: ((OID, DER), ...) in certificate order.
    dice: tuple[tuple[x509.ObjectIdentifier, bytes], ...]


def facts(certificate: x509.Certificate) -> Facts:
    """One pass over the extensions of ``certificate``."""
    constraints: x509.BasicConstraints | None = None
    usage: x509.KeyUsage | None = None
    unknown: x509.ObjectIdentifier | None = None
    dice: list[tuple[x509.ObjectIdentifier, bytes]] = []
    # Exact type checks: isinstance() against cryptography's ABCs costs ~1 us each, and this
    # runs for every extension of every certificate validated.
    for extension in extensions(certificate):
        value = extension.value
        kind = type(value)
        if kind is x509.BasicConstraints:
            constraints = value
            continue  # understood, critical or not
        if kind is x509.KeyUsage:
            usage = value
            continue
        if kind is x509.UnrecognizedExtension:
            if value.oid in DICE_EXTENSION_OIDS:
                dice.append((value.oid, value.value))
            elif extension.critical and unknown is None:
                unknown = value.oid
            continue
        if extension.critical and unknown is None and extension.oid not in UNDERSTOOD_CRITICAL:
            unknown = extension.oid
    return Facts(constraints, usage, unknown, tuple(dice))


def check_constraints(
    path: Sequence[x509.Certificate],
    anchor: x509.Certificate | None,
    path_facts: Sequence[Facts] | None = None,
) -> None:
    """basicConstraints cA, keyUsage keyCertSign and pathLen of every issuer.

    Issuers are every certificate above the leaf, plus the anchor when it is a certificate.
    pathLen counts the certificates with ``cA`` TRUE below the issuer, a CA leaf included.
    ``path_facts`` (from :func:`facts`, one per certificate of ``path``) saves a pass.
    """
    found = list(path_facts) if path_facts is not None else [facts(c) for c in path]
    if anchor is not None:
        found.append(_anchor_facts(anchor))
    for position in range(1, len(found)):
        issuer = anchor if position == len(path) else path[position]
        if issuer is None:  # pragma: no cover - len(found) > len(path) only with an anchor
            break
        constraints, usage = found[position].basic_constraints, found[position].key_usage
        issued = path[position - 1]
        if constraints is None or not constraints.ca:
            raise BasicConstraintsError(
                f"{describe(issuer)} issued {describe(issued)} but is not a CA "
                f"(basicConstraints cA is {'absent' if constraints is None else 'FALSE'})"
            )
        if usage is not None and not usage.key_cert_sign:
            raise BasicConstraintsError(
                f"{describe(issuer)} issued {describe(issued)} but its keyUsage lacks keyCertSign"
            )
        if constraints.path_length is not None:
            below = sum(
                1
                for j in range(position)
                if (bc := found[j].basic_constraints) is not None
                and bc.ca
                and path[j].subject != path[j].issuer  # self-issued certificates do not count
            )
            if below > constraints.path_length:
                raise BasicConstraintsError(
                    f"{describe(issuer)} has pathLen {constraints.path_length} but {below} CA "
                    f"certificate(s) follow it (a CA leaf counts: it certifies the next layer)"
                )


# Facts of trust anchor certificates by identity (see _anchor_facts).
_ANCHOR_FACTS: dict[int, tuple[x509.Certificate, Facts]] = {}


def _anchor_facts(anchor: x509.Certificate) -> Facts:
    """Facts of a trust anchor certificate: the same few anchor objects are used over and over.

    Keyed by identity, as hashing a certificate costs ~2.5 us; each entry holds its anchor, so
    its id cannot be reused by another object while the entry exists.
    """
    entry = _ANCHOR_FACTS.get(id(anchor))
    if entry is not None and entry[0] is anchor:
        return entry[1]
    found = facts(anchor)
    if len(_ANCHOR_FACTS) >= 64:
        _ANCHOR_FACTS.clear()
    _ANCHOR_FACTS[id(anchor)] = (anchor, found)
    return found


def check_critical_extensions(
    path: Sequence[x509.Certificate], path_facts: Sequence[Facts] | None = None
) -> None:
    """No certificate carries a critical extension that edgetrust does not process."""
    found = path_facts if path_facts is not None else [facts(c) for c in path]
    for certificate, certificate_facts in zip(path, found, strict=True):
        if certificate_facts.unknown_critical is not None:
            raise UnknownCriticalExtensionError(
                f"{describe(certificate)} carries critical extension "
                f"{certificate_facts.unknown_critical.dotted_string}, "
                "which edgetrust does not process"
            )


def describe(certificate: x509.Certificate) -> str:
    """How errors name a certificate: its subject (or serial when the subject is empty)."""
    return name_text(certificate.subject) or f"serial {certificate.serial_number:x}"


def name_text(name: x509.Name) -> str:
    """RFC 4514 text of a name, with ``serialNumber`` spelled out (Open DICE subjects use it)."""
    return name.rfc4514_string(_ATTRIBUTE_NAMES)


def extensions(certificate: x509.Certificate) -> x509.Extensions:
    """The parsed extensions; :class:`CertificateError` when cryptography cannot parse them."""
    try:
        return certificate.extensions
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
        raise CertificateError(f"{describe(certificate)} has malformed extensions: {e}") from e
