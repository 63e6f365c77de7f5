"""DICE certificate chain validation: a typed result, or one precise error. Pure (``now`` given).

``validate_chain(certificates, anchors, now)`` takes the certificates in any order, puts them in
order by name (leaf first), finds the trust anchor, validates the path and decodes every DICE
extension on the way:

* P-256 / P-384 (and RSA) chains go through cryptography's path validator (:mod:`.path_validator`:
  ``cryptography.x509.verification``, a client verifier with extension policies that permit any
  extension but refuse unknown critical ones, and that know our DICE extension types, so a
  critical TcbInfo is accepted). The DICE-strict rules cryptography does not apply (keyUsage
  keyCertSign on issuers, a CA leaf counting against pathLen, no critical extension that we do
  not process ourselves -- see :mod:`.links`) run on top.
* Chains with an Ed25519 key or signature anywhere (Open DICE) are checked link by link by
  :mod:`.links`, with the same rules.
* When cryptography refuses a chain, :mod:`.links` re-checks it to say precisely why, so the
  two kinds of chain fail with the same error for the same defect.

A trust anchor is a certificate or a bare public key. For cryptography's validator a bare key
becomes an in-memory anchor certificate carrying that key and the top certificate's issuer name
(trust anchors are trusted a priori, so that certificate's own signature is never checked).

Errors (the first that applies, in this order):

=================================  ============================================================
``NameChainingError``              the certificates do not form one chain by issuer/subject name
``UntrustedAnchorError``           no anchor has the top certificate's issuer name and no anchor
                                   key verifies it (or the chain ends at a self-signed non-anchor)
``SignatureError``                 a signature does not verify with the key of the certificate
                                   named as its issuer -- in the middle of the chain, and also at
                                   the top when a certificate anchor carries the issuer's name
``NotYetValidError`` / ``ExpiredError``   a certificate (anchor certificate included) at ``now``
``BasicConstraintsError``          an issuer without cA, without keyCertSign, or over its pathLen
``UnknownCriticalExtensionError``  a critical extension we do not process
``DiceExtensionError``             a malformed TcbInfo / MultiTcbInfo / Ueid / Open DICE extension
                                   (including the old RIoT layout under the TcbInfo OID)
``ASN1Error`` (first of all)       a certificate whose names, validity or extensions do not parse
=================================  ============================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import PublicKeyAlgorithmOID, SignatureAlgorithmOID

from edgetrust.certs import links
from edgetrust.certs.dice_ext import (
    MULTI_TCB_INFO_OID,
    OPEN_DICE_INPUT_OID,
    TCB_INFO_OID,
    UEID_OID,
    MultiTcbInfo,
    OpenDiceInput,
    TcbInfo,
    Ueid,
)
from edgetrust.certs.keys import PublicKey, certificate_public_key
from edgetrust.certs.loading import TrustAnchor
from edgetrust.certs.path_validator import validate_path
from edgetrust.errors import (
    ASN1Error,
    CertificateError,
    ConfigError,
    NameChainingError,
    UntrustedAnchorError,
)

__all__ = [
    "ChainEntry",
    "DiceExtensions",
    "TrustAnchor",
    "ValidatedChain",
    "dice_extensions",
    "order_chain",
    "validate_chain",
]

_EDWARDS: Final = frozenset(
    {
        PublicKeyAlgorithmOID.ED25519,
        PublicKeyAlgorithmOID.ED448,
        SignatureAlgorithmOID.ED25519,
        SignatureAlgorithmOID.ED448,
    }
)
_ANCHOR_TYPES: Final = (
    x509.Certificate,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    rsa.RSAPublicKey,
)
_DECODERS: Final[dict[x509.ObjectIdentifier, Callable[[bytes], Any]]] = {
    TCB_INFO_OID: TcbInfo.from_der,
    MULTI_TCB_INFO_OID: MultiTcbInfo.from_der,
    UEID_OID: Ueid.from_der,
    OPEN_DICE_INPUT_OID: OpenDiceInput.from_der,
}


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DiceExtensions:
    """The DICE extensions of one certificate, decoded.

    ``tcb_info`` lists every TcbInfo the certificate carries: the tcg-dice-TcbInfo extension
    first, then the entries of tcg-dice-MultiTcbInfo (also kept alone in ``multi_tcb_info``).
    """

    tcb_info: tuple[TcbInfo, ...] = ()
    multi_tcb_info: MultiTcbInfo | None = None
    ueid: Ueid | None = None
    open_dice: OpenDiceInput | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tcb_info": [t.to_dict() for t in self.tcb_info],
            "ueid": None if self.ueid is None else self.ueid.hex(),
            "open_dice": None if self.open_dice is None else self.open_dice.to_dict(),
        }


_NO_DICE: Final = DiceExtensions()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainEntry:
    """One validated certificate and its decoded DICE extensions."""

    certificate: x509.Certificate
    dice: DiceExtensions

    @property
    def subject(self) -> str:
        return links.name_text(self.certificate.subject)

    @property
    def issuer(self) -> str:
        return links.name_text(self.certificate.issuer)

    @property
    def tcb_info(self) -> tuple[TcbInfo, ...]:
        return self.dice.tcb_info

    @property
    def multi_tcb_info(self) -> MultiTcbInfo | None:
        return self.dice.multi_tcb_info

    @property
    def ueid(self) -> Ueid | None:
        return self.dice.ueid

    @property
    def open_dice(self) -> OpenDiceInput | None:
        return self.dice.open_dice

    def to_dict(self) -> dict[str, Any]:
        """The ``certs verify --json`` form of this entry."""
        return {"subject": self.subject, "issuer": self.issuer, **self.dice.to_dict()}


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatedChain:
    """A chain that passed every check: leaf first, up to the certificate the anchor signed."""

    entries: tuple[ChainEntry, ...]
    anchor: TrustAnchor
    #: ``"cryptography"`` (path validator + DICE rules) or ``"edgetrust"`` (link by link).
    validator: str

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ChainEntry]:
        return iter(self.entries)

    @property
    def leaf(self) -> x509.Certificate:
        return self.entries[0].certificate

    @property
    def leaf_public_key(self) -> PublicKey:
        return certificate_public_key(self.leaf)

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(e.certificate for e in self.entries)

    @property
    def ueid(self) -> Ueid | None:
        """The first UEID found from the top down (normally the DeviceID certificate's)."""
        for entry in reversed(self.entries):
            if entry.ueid is not None:
                return entry.ueid
        return None


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def validate_chain(
    certificates: Sequence[x509.Certificate],
    anchors: Sequence[TrustAnchor],
    now: datetime,
) -> ValidatedChain:
    """Validate ``certificates`` (any order) against ``anchors`` at ``now``; see module doc."""
    try:
        return _validate(certificates, anchors, _utc(now))
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        # cryptography parses some fields lazily: name the damaged certificate precisely (the
        # check is done only now, to keep it off the path of every valid chain).
        _preflight(certificates)
        _preflight([a for a in anchors if isinstance(a, x509.Certificate)], "trust anchor")
        raise


def _validate(
    certificates: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor], now: datetime
) -> ValidatedChain:
    for index, certificate in enumerate(certificates):
        if not isinstance(certificate, x509.Certificate):
            raise ConfigError(f"certificate {index + 1} is not an x509.Certificate")
    anchor_list = _promote_key_anchors(_check_anchors(anchors), certificates)
    anchor_certs = [a for a in anchor_list if isinstance(a, x509.Certificate)]
    candidates = [c for c in certificates if not any(c is a or c == a for a in anchor_certs)]
    try:
        path = order_chain(candidates)
    except NameChainingError:
        # The bundle may go on above a trusted intermediate (up to its root): drop that part.
        trimmed = _drop_above_anchors(candidates, anchor_certs)
        if len(trimmed) == len(candidates):
            raise
        path = order_chain(trimmed)
    path_facts = [links.facts(c) for c in path]
    if any(_is_edwards(c) for c in path):
        match = links.check_path(path, anchor_list, now, path_facts)
        return _result(path, path_facts, match.anchor, "edgetrust")
    anchor = validate_path(path, anchor_list, now)
    # Rules cryptography does not apply (keyCertSign, a CA leaf against pathLen; critical
    # extensions it processes but we do not, such as name constraints); it already checked
    # signatures and validity.
    anchor_cert = anchor if isinstance(anchor, x509.Certificate) else None
    links.check_constraints(path, anchor_cert, path_facts)
    links.check_critical_extensions(path, path_facts)
    return _result(path, path_facts, anchor, "cryptography")


def order_chain(certificates: Sequence[x509.Certificate]) -> list[x509.Certificate]:
    """Order certificates leaf first by issuer/subject name; :class:`NameChainingError` if they
    do not form exactly one chain (duplicates are dropped)."""
    unique: list[x509.Certificate] = []
    for certificate in certificates:
        # Identity first: comparing two equal certificates costs ~4 us, unequal ones ~0.05 us.
        if not any(certificate is u or certificate == u for u in unique):
            unique.append(certificate)
    if not unique:
        raise CertificateError("no certificates to validate (only trust anchors were given)")
    # x509.Name equality and hashing are slow (about 1 us): hash each name once, and compare
    # only names whose hashes match.
    subjects = [c.subject for c in unique]
    issuers = [c.issuer for c in unique]
    by_hash: dict[int, list[int]] = {}
    for index, subject in enumerate(subjects):
        by_hash.setdefault(hash(subject), []).append(index)
    parents: list[list[int]] = []  # for each certificate, those named as its issuer
    has_child = [False] * len(unique)
    for i, issuer in enumerate(issuers):
        named = by_hash.get(hash(issuer))
        above = [j for j in named if j != i and subjects[j] == issuer] if named else []
        for j in above:
            has_child[j] = True
        parents.append(above)
    leaves = [i for i, child in enumerate(has_child) if not child]
    if len(leaves) != 1:
        if not leaves:
            raise NameChainingError("the certificates' issuer names form a cycle")
        raise NameChainingError(
            "the certificates do not form one chain: "
            + ", ".join(links.describe(unique[i]) for i in leaves)
            + " each issue nothing in the set (an issuer name does not match the subject above)"
        )
    order = [leaves[0]]
    while True:
        current = order[-1]
        above = [j for j in parents[current] if j not in order]
        if not above:
            break
        if len(above) > 1:
            raise NameChainingError(
                f"{len(above)} certificates are named {links.name_text(issuers[current])}, "
                f"the issuer of {links.describe(unique[current])}"
            )
        order.append(above[0])
    if len(order) != len(unique):
        stray = [links.describe(c) for i, c in enumerate(unique) if i not in order]
        raise NameChainingError(
            f"not on the chain of {links.describe(unique[order[0]])}: {', '.join(stray)}"
        )
    return [unique[i] for i in order]


def dice_extensions(certificate: x509.Certificate) -> DiceExtensions:
    """Decode the DICE extensions of ``certificate``; :class:`DiceExtensionError` if malformed."""
    return _decode_dice(links.facts(certificate).dice)


def _decode_dice(raw: tuple[tuple[x509.ObjectIdentifier, bytes], ...]) -> DiceExtensions:
    """The decoded DICE extensions of one certificate.

    A set without a UEID (an alias certificate: TcbInfo, Open DICE inputs) is the firmware's
    and repeats across a fleet, so it is cached by its bytes; a set with one is a device's own,
    decoded every time (a cache of them would only ever miss).
    """
    if not raw:
        return _NO_DICE
    for oid, _ in raw:
        if oid == UEID_OID:
            return _build_dice(raw)
    return _firmware_dice(raw)


@functools.lru_cache(maxsize=256)
def _firmware_dice(raw: tuple[tuple[x509.ObjectIdentifier, bytes], ...]) -> DiceExtensions:
    return _build_dice(raw)


def _build_dice(raw: tuple[tuple[x509.ObjectIdentifier, bytes], ...]) -> DiceExtensions:
    found = {oid: _DECODERS[oid](value) for oid, value in raw}
    tcb: TcbInfo | None = found.get(TCB_INFO_OID)
    multi: MultiTcbInfo | None = found.get(MULTI_TCB_INFO_OID)
    ueid: Ueid | None = found.get(UEID_OID)
    open_dice: OpenDiceInput | None = found.get(OPEN_DICE_INPUT_OID)
    tcb_info = ((tcb,) if tcb is not None else ()) + (multi.entries if multi is not None else ())
    return DiceExtensions(tcb_info=tcb_info, multi_tcb_info=multi, ueid=ueid, open_dice=open_dice)


def _result(
    path: Sequence[x509.Certificate],
    path_facts: Sequence[links.Facts],
    anchor: TrustAnchor,
    validator: str,
) -> ValidatedChain:
    entries = tuple(
        ChainEntry(certificate=c, dice=_decode_dice(f.dice))
        for c, f in zip(path, path_facts, strict=True)
    )
    return ValidatedChain(entries=entries, anchor=anchor, validator=validator)


def _preflight(certificates: Sequence[x509.Certificate], what: str = "certificate") -> None:
    """Parse every field the checks read. cryptography parses some of them lazily, so a damaged
    certificate would otherwise fail with a bare ValueError in the middle of validation."""
    for index, certificate in enumerate(certificates):
        if not isinstance(certificate, x509.Certificate):
            raise ConfigError(f"{what} {index + 1} is not an x509.Certificate")
        try:
            certificate.subject, certificate.issuer  # noqa: B018
            certificate.not_valid_before_utc, certificate.not_valid_after_utc  # noqa: B018
            certificate.signature_algorithm_oid, certificate.public_key_algorithm_oid  # noqa: B018
            certificate.extensions  # noqa: B018
            serial = certificate.serial_number
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType) as e:
            raise ASN1Error(f"{what} {index + 1} is malformed: {e}") from e
        if serial <= 0:
            raise ASN1Error(f"{what} {index + 1} has a serial number that is not positive")


def _check_anchors(anchors: Sequence[TrustAnchor]) -> list[TrustAnchor]:
    if isinstance(anchors, x509.Certificate):
        raise ConfigError("anchors must be a sequence of certificates or public keys")
    anchor_list = list(anchors)
    if not anchor_list:
        raise UntrustedAnchorError("no trust anchors configured")
    for anchor in anchor_list:
        if not isinstance(anchor, _ANCHOR_TYPES):
            raise ConfigError(f"not a trust anchor: {type(anchor).__name__}")
    return anchor_list


def _drop_above_anchors(
    certificates: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """The certificates minus the issuers of anchor certificates (and their issuers, ...)."""
    remaining = list(certificates)
    frontier = [a for a in anchors if a.subject != a.issuer]
    while frontier:
        above = [c for c in remaining if any(c.subject == a.issuer for a in frontier)]
        remaining = [c for c in remaining if c not in above]
        frontier = [c for c in above if c.subject != c.issuer]
    return remaining


def _promote_key_anchors(
    anchors: list[TrustAnchor], certificates: Sequence[x509.Certificate]
) -> list[TrustAnchor]:
    """A self-signed certificate in the bundle whose key is a bare-key anchor *is* that anchor:
    use the certificate (and its constraints) as the anchor, so it is not validated as a link."""
    keys = [a for a in anchors if not isinstance(a, x509.Certificate)]
    if not keys:
        return anchors
    promoted = list(anchors)
    for certificate in certificates:
        if certificate.subject != certificate.issuer:
            continue
        key = certificate.public_key()
        for anchor in keys:
            if anchor == key and anchor in promoted:
                promoted[promoted.index(anchor)] = certificate
    return promoted


def _utc(now: datetime) -> datetime:
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise ConfigError("now must be a timezone-aware datetime")
    return now.astimezone(UTC)


def _is_edwards(certificate: x509.Certificate) -> bool:
    return (
        certificate.public_key_algorithm_oid in _EDWARDS
        or certificate.signature_algorithm_oid in _EDWARDS
    )
