"""Reference values and endorsements: what a verifier expects a genuine device to report.

The manufacturer (factory) knows, per product and firmware version, the digest of every layer it
ships, the minimum security version number (SVN) it still accepts for each layer (anti-rollback),
and whether a debug-enabled or insecurely-booted device may be admitted. It exports them together
with its trust anchors as an :class:`EndorsementBundle`; the verifier imports the bundle and hands
:class:`ReferenceValues` and the anchors to :func:`edgetrust.attest.appraisal.appraise`.

Reference-values JSON (format version 1)
----------------------------------------

.. code-block:: json

    {
      "format": "edgetrust-reference-values",
      "version": 1,
      "products": [
        {
          "product": "edgetrust-sim",
          "hwmodel": "6564676574727573742d73696d",
          "oemid": "0a0b0c",
          "svn_min": {"bootloader": 1, "firmware": 3},
          "firmware": [
            {
              "version": "1.0.0",
              "debug": "forbidden",
              "secure_boot": "required",
              "layers": [
                {"name": "bootloader", "digests": {"sha256": "<64 hex>", "sha384": "<96 hex>"}},
                {"name": "firmware", "digests": {"sha256": "<64 hex>"}},
                {"name": "model", "digests": {"sha256": "<64 hex>"}, "dice": false}
              ]
            }
          ]
        }
      ]
    }

Fields:

* ``format`` (required) must be ``"edgetrust-reference-values"``; ``version`` (required) must be
  ``1``. A newer version is refused rather than half-understood.
* ``products[].product`` (required): the product name. The evidence's ``hwmodel`` claim (bytes)
  selects the product: by default it is the UTF-8 encoding of the name; ``hwmodel`` (hex) overrides.
* ``products[].oemid`` (optional): when given, the evidence's ``oemid`` must equal it: a hex
  string for an IEEE OUI (3 bytes) or random OEM ID (16 bytes), an integer for an IANA Private
  Enterprise Number (RFC 9711 section 4.2.3).
* ``products[].svn_min`` (optional): layer name -> minimum SVN (integer >= 0). It lives at product
  level because rollback protection spans firmware versions: raising a minimum retires every older
  version at once. A layer without a minimum accepts any SVN.
* ``products[].firmware[]``: one entry per endorsed firmware version (the evidence's ``swversion``).
  ``debug`` is ``"forbidden"`` (default) or ``"allowed"``; ``secure_boot`` is ``"required"``
  (default) or ``"optional"``.
* ``layers[]``: ``name`` (the layer / measured component name: it must equal the token's
  measurement name and, for DICE layers, the ``model`` of the layer's TcbInfo -- attest.identity
  uses the layer name for both), ``digests`` (algorithm -> hex
  digest; ``sha256``, ``sha384`` or ``sha512``, at least one) and ``dice`` (default ``true``):
  whether the layer is a DICE layer whose alias certificate carries a TcbInfo whose FWIDs must match
  the same digests. Components measured only in the token (the loaded application, the model) use
  ``"dice": false``.
* ``description`` is accepted at every level for people and ignored.

Unknown fields are **rejected** with a :class:`~edgetrust.errors.ConfigError` naming the field
path: a misspelt security setting (``"svn_minn"``) silently dropped would fail open. The only
free-form field is ``description``.

Endorsement bundle JSON (format version 1)::

    {"format": "edgetrust-endorsements", "version": 1,
     "trust_anchors": "-----BEGIN CERTIFICATE-----\\n...",   # one or more PEM blocks
     "reference_values": { ... the document above ... }}

Trust anchors are ``CERTIFICATE`` (manufacturer roots / intermediates) or ``PUBLIC KEY`` PEM blocks.

The per-product value classes (:class:`ProductReference`, :class:`FirmwareReference`,
:class:`LayerReference`, the digest algorithms and policies) and the reading / writing of one
``products[]`` entry live in :mod:`edgetrust.attest.products`; this module re-exports them and
holds the documents: :class:`ReferenceValues`, :class:`EndorsementBundle` and the trust anchors.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgetrust.attest.jsondoc import JsonObject, parse_json
from edgetrust.attest.products import (
    DebugPolicy,
    DigestAlgorithm,
    DigestVerdict,
    FirmwareReference,
    LayerReference,
    ProductReference,
    SecureBootPolicy,
    product_from_dict,
    product_to_dict,
)
from edgetrust.certs.loading import TrustAnchor, load_trust_anchors
from edgetrust.errors import ConfigError, EvidenceError

__all__ = [
    "ENDORSEMENT_FORMAT",
    "FORMAT_VERSION",
    "REFERENCE_FORMAT",
    "Anchor",
    "DebugPolicy",
    "DigestAlgorithm",
    "DigestVerdict",
    "EndorsementBundle",
    "FirmwareReference",
    "LayerReference",
    "ProductReference",
    "ReferenceValues",
    "SecureBootPolicy",
    "anchors_to_pem",
    "parse_anchors",
]

REFERENCE_FORMAT = "edgetrust-reference-values"
ENDORSEMENT_FORMAT = "edgetrust-endorsements"
FORMAT_VERSION = 1

#: A trust anchor: a manufacturer certificate or a bare public key.
Anchor: TypeAlias = TrustAnchor


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceValues:
    """All products a verifier knows, looked up by the evidence's ``hwmodel``."""

    products: tuple[ProductReference, ...] = ()

    def __post_init__(self) -> None:
        models = [p.hwmodel for p in self.products]
        if len(set(models)) != len(models):
            raise ConfigError("two products share one hwmodel")

    def product_for(self, hwmodel: bytes) -> ProductReference | None:
        """The product whose hwmodel equals ``hwmodel`` (the token's claim), if any."""
        for product in self.products:
            if product.hwmodel == hwmodel:
                return product
        return None

    def product_named(self, name: str) -> ProductReference | None:
        for product in self.products:
            if product.product == name:
                return product
        return None

    def lookup(self, hwmodel: bytes, firmware_version: str) -> FirmwareReference | None:
        product = self.product_for(hwmodel)
        return None if product is None else product.firmware_version(firmware_version)

    def merged(self, other: ReferenceValues) -> ReferenceValues:
        """These products plus ``other``'s; a product in both is replaced by ``other``'s."""
        replaced = {p.hwmodel for p in other.products}
        kept = tuple(p for p in self.products if p.hwmodel not in replaced)
        return ReferenceValues(products=kept + other.products)

    # ---- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": REFERENCE_FORMAT,
            "version": FORMAT_VERSION,
            "products": [product_to_dict(p) for p in self.products],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> ReferenceValues:
        obj = JsonObject(data, "reference values")
        obj.allow("format", "version", "products")
        obj.check_format(REFERENCE_FORMAT, FORMAT_VERSION)
        products = tuple(
            product_from_dict(item, f"products[{i}]")
            for i, item in enumerate(obj.array("products"))
        )
        return cls(products=products)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceValues:
        return cls.from_dict(parse_json(text, "reference values"))

    @classmethod
    def load(cls, path: str | Path) -> ReferenceValues:
        return cls.from_json(_read(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())


@dataclass(frozen=True, slots=True, kw_only=True)
class EndorsementBundle:
    """What the factory exports and a verifier imports: trust anchors + reference values."""

    anchors_pem: str
    reference_values: ReferenceValues
    anchors: tuple[Anchor, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", parse_anchors(self.anchors_pem))

    @classmethod
    def build(
        cls, *, anchors: Sequence[Anchor], reference_values: ReferenceValues
    ) -> EndorsementBundle:
        """A bundle from certificate / public-key objects."""
        return cls(anchors_pem=anchors_to_pem(anchors), reference_values=reference_values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": ENDORSEMENT_FORMAT,
            "version": FORMAT_VERSION,
            "trust_anchors": self.anchors_pem,
            "reference_values": self.reference_values.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> EndorsementBundle:
        obj = JsonObject(data, "endorsements")
        obj.allow("format", "version", "trust_anchors", "reference_values")
        obj.check_format(ENDORSEMENT_FORMAT, FORMAT_VERSION)
        return cls(
            anchors_pem=obj.text("trust_anchors"),
            reference_values=ReferenceValues.from_dict(obj.required("reference_values")),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> EndorsementBundle:
        return cls.from_dict(parse_json(text, "endorsements"))

    @classmethod
    def load(cls, path: str | Path) -> EndorsementBundle:
        return cls.from_json(_read(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())


# ---- trust anchors ----------------------------------------------------------------------------


def parse_anchors(pem: str) -> tuple[Anchor, ...]:
    """Certificates and public keys from concatenated PEM blocks; at least one is required."""
    if "-----BEGIN" not in pem:
        raise ConfigError("trust anchors: no CERTIFICATE or PUBLIC KEY PEM block found")
    try:
        anchors = load_trust_anchors(pem.encode("utf-8"))
    except EvidenceError as e:
        raise ConfigError(f"trust anchors: {e.message}") from e
    if not anchors:
        raise ConfigError("trust anchors: no CERTIFICATE or PUBLIC KEY PEM block found")
    return tuple(anchors)


def anchors_to_pem(anchors: Sequence[Anchor]) -> str:
    parts: list[str] = []
    for anchor in anchors:
        if isinstance(anchor, x509.Certificate):
            parts.append(anchor.public_bytes(serialization.Encoding.PEM).decode("ascii"))
        else:
            parts.append(
                anchor.public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ).decode("ascii")
            )
    if not parts:
        raise ConfigError("an endorsement bundle needs at least one trust anchor")
    return "".join(parts)


# ---- files ------------------------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
