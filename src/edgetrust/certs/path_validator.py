"""The route of P-256 / P-384 (and RSA) chains: cryptography's path validator, DICE-aware.

:func:`validate_path` runs ``cryptography.x509.verification`` as a client verifier whose extension
policies permit any extension but refuse unknown critical ones, and know our DICE extension types
(so a critical TcbInfo is accepted). It returns the trust anchor the path chained to. When
cryptography refuses the path, :func:`edgetrust.certs.links.check_path` re-checks it to raise the
same precise error an Ed25519 chain would get for the same defect; what our rules do not explain
is mapped by :func:`translate_error`. :mod:`edgetrust.certs.chain` adds the DICE-strict rules
cryptography does not apply.

A bare EC / RSA key anchor becomes an in-memory anchor certificate carrying that key and the top
certificate's issuer name (trust anchors are trusted a priori, so that certificate's own
signature is never checked). Stores and stand-in certificates are cached: a verifier checks chain
after chain against the same anchor objects.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from edgetrust.certs import links
from edgetrust.certs.dice_ext import (
    MultiTcbInfoExtension,
    OpenDiceInputExtension,
    TcbInfoExtension,
    UeidExtension,
)
from edgetrust.certs.keys import PublicKey
from edgetrust.certs.loading import TrustAnchor
from edgetrust.errors import (
    AlgorithmError,
    BasicConstraintsError,
    CertificateError,
    SignatureError,
    UnknownCriticalExtensionError,
    UntrustedAnchorError,
    ValidityError,
)

__all__ = ["CA_POLICY", "EE_POLICY", "translate_error", "validate_path"]

_DICE_TYPES: Final = (
    TcbInfoExtension,
    MultiTcbInfoExtension,
    UeidExtension,
    OpenDiceInputExtension,
)


def _extension_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    ca = ExtensionPolicy.permit_all().require_present(
        x509.BasicConstraints, Criticality.AGNOSTIC, None
    )
    ee = ExtensionPolicy.permit_all()
    for extension_type in _DICE_TYPES:
        ca = ca.may_be_present(extension_type, Criticality.AGNOSTIC, None)
        ee = ee.may_be_present(extension_type, Criticality.AGNOSTIC, None)
    return ca, ee


#: The extension policies for CA and end-entity certificates (tests build verifiers with them).
CA_POLICY, EE_POLICY = _extension_policies()
# PolicyBuilder's default: longer paths raise it (one builder step less on every call).
_DEFAULT_MAX_CHAIN_DEPTH: Final = 8


def validate_path(
    path: Sequence[x509.Certificate], anchors: Sequence[TrustAnchor], now: datetime
) -> TrustAnchor:
    """Run cryptography's validator; return the anchor it chained to, or raise precisely.

    Every certificate anchor goes into the store (cryptography matches names itself, and the
    store is reused while the anchors stay the same); a bare EC/RSA key goes in as a stand-in
    certificate named after the top certificate's issuer.
    """
    top = path[-1]
    store_certs: list[x509.Certificate] = []
    origin: list[TrustAnchor] = []  # the anchor behind each store certificate
    for anchor in anchors:
        if isinstance(anchor, x509.Certificate):
            store_certs.append(anchor)
            origin.append(anchor)
        elif isinstance(anchor, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            store_certs.append(_anchor_certificate(_spki(anchor), top.issuer))
            origin.append(anchor)
    if not store_certs:
        links.select_anchor(top, anchors)  # raises the precise UntrustedAnchorError
        raise UntrustedAnchorError(f"no trust anchor for {links.describe(top)}")
    builder = PolicyBuilder().store(_store(tuple(store_certs))).time(now)
    if len(path) + 1 > _DEFAULT_MAX_CHAIN_DEPTH:
        builder = builder.max_chain_depth(len(path) + 1)
    verifier = builder.extension_policies(
        ca_policy=CA_POLICY, ee_policy=EE_POLICY
    ).build_client_verifier()
    try:
        chain = verifier.verify(path[0], list(path[1:])).chain
    except VerificationError as e:
        links.check_path(path, anchors, now)  # the precise reason, if our rules see it
        raise translate_error(e) from e
    # The validated path must be ours, certificate for certificate: every entry we return
    # must have been checked (a same-named anchor or duplicate could make it shorter or other).
    # The validator returns the very objects it was given; comparing two equal certificates
    # costs ~4 us (no identity shortcut), so identity is tried first.
    if len(chain) != len(path) + 1 or any(
        a is not b and a != b for a, b in zip(chain, path, strict=False)
    ):
        raise CertificateError("cryptography's validator built a different path than the names")
    if len(store_certs) == 1:
        return origin[0]
    top_anchor = chain[-1]
    return origin[next(i for i, c in enumerate(store_certs) if c is top_anchor or c == top_anchor)]


def translate_error(error: VerificationError) -> CertificateError | SignatureError | AlgorithmError:
    """Map a VerificationError our own rules did not explain to the closest precise error."""
    message = str(error).split(" (encountered processing", 1)[0]
    message = message.removeprefix("validation failed: ").removeprefix("candidates exhausted: ")
    text = f"path validation failed: {message}"
    lowered = message.lower()
    if "signature" in lowered and "match" in lowered:
        return SignatureError(text)
    if "not valid at validation time" in lowered:
        return ValidityError(text)
    if "path length" in lowered or "basicconstraints" in lowered or "keyusage" in lowered:
        return BasicConstraintsError(text)
    if "critical extension" in lowered:
        return UnknownCriticalExtensionError(text)
    if "forbidden" in lowered and "algorithm" in lowered:
        return AlgorithmError(text)
    if "no interior errors" in lowered:
        return UntrustedAnchorError(text)
    return CertificateError(text)


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# Stores by the identities of their anchor certificates (see _store).
_STORES: dict[tuple[int, ...], tuple[tuple[x509.Certificate, ...], Store]] = {}


def _store(certificates: tuple[x509.Certificate, ...]) -> Store:
    """A cryptography Store, reused for the same anchors (building one costs ~15 us a call).

    Keyed by the anchors' identities: a verifier uses the same anchor objects over and over,
    and hashing a certificate costs ~2.5 us. Each entry holds its certificates, so an id in a
    key cannot be reused by another object while the entry exists.
    """
    key = tuple(map(id, certificates))
    entry = _STORES.get(key)
    if entry is not None and all(a is b for a, b in zip(entry[0], certificates, strict=True)):
        return entry[1]
    store = Store(list(certificates))
    if len(_STORES) >= 64:
        _STORES.clear()
    _STORES[key] = (certificates, store)
    return store


@functools.lru_cache(maxsize=256)
def _anchor_certificate(spki: bytes, name: x509.Name) -> x509.Certificate:
    """An in-memory anchor certificate for a bare-key trust anchor (see the module doc)."""
    key = serialization.load_der_public_key(spki)
    start = datetime(1950, 1, 1, tzinfo=UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key)  # type: ignore[arg-type]
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=365 * 8049))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return builder.sign(_stand_in_signer(), hashes.SHA256())


@functools.cache
def _stand_in_signer() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())
