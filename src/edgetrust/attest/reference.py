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
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edgetrust.attest.jsondoc import JsonObject, parse_json
from edgetrust.certs.loading import TrustAnchor, load_trust_anchors
from edgetrust.errors import ConfigError, EvidenceError

REFERENCE_FORMAT = "edgetrust-reference-values"
ENDORSEMENT_FORMAT = "edgetrust-endorsements"
FORMAT_VERSION = 1

#: A trust anchor: a manufacturer certificate or a bare public key.
Anchor: TypeAlias = TrustAnchor


class DigestAlgorithm(StrEnum):
    """Hash algorithms accepted in reference values, by their IANA "Named Information" names."""

    SHA256 = "sha256"
    SHA384 = "sha384"
    SHA512 = "sha512"

    @property
    def size(self) -> int:
        return _DIGEST_SIZES[self]

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.value, data).digest()


_DIGEST_SIZES = {
    DigestAlgorithm.SHA256: 32,
    DigestAlgorithm.SHA384: 48,
    DigestAlgorithm.SHA512: 64,
}


class DebugPolicy(StrEnum):
    FORBIDDEN = "forbidden"
    ALLOWED = "allowed"


class SecureBootPolicy(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"


class DigestVerdict(StrEnum):
    """The outcome of comparing reported digests with reference digests."""

    MATCH = "match"  # at least one algorithm in common, and every common algorithm matches
    MISMATCH = "mismatch"  # some common algorithm differs
    NO_COMMON_ALGORITHM = "no_common_algorithm"


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerReference:
    """The expected digests of one layer (DICE layer or measured component)."""

    name: str
    digests: Mapping[DigestAlgorithm, bytes]
    dice: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("layer name is empty")
        if not self.digests:
            raise ConfigError(f"layer {self.name!r} has no digests")
        for alg, value in self.digests.items():
            if len(value) != DigestAlgorithm(alg).size:
                raise ConfigError(
                    f"layer {self.name!r}: {alg} digest has {len(value)} bytes, "
                    f"expected {DigestAlgorithm(alg).size}"
                )

    @classmethod
    def of_code(
        cls,
        name: str,
        code: bytes,
        *,
        algorithms: Iterable[DigestAlgorithm] = (DigestAlgorithm.SHA256,),
        dice: bool = True,
    ) -> LayerReference:
        """The reference for a layer whose code (image bytes) the factory holds."""
        return cls(name=name, digests={a: a.digest(code) for a in algorithms}, dice=dice)

    def compare(self, reported: Mapping[DigestAlgorithm, bytes]) -> DigestVerdict:
        """Compare digests reported by a device (constant time per digest)."""
        common = [a for a in reported if a in self.digests]
        if not common:
            return DigestVerdict.NO_COMMON_ALGORITHM
        ok = True
        for alg in common:
            ok &= hmac.compare_digest(reported[alg], self.digests[alg])
        return DigestVerdict.MATCH if ok else DigestVerdict.MISMATCH


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareReference:
    """One endorsed firmware version of a product."""

    version: str
    layers: tuple[LayerReference, ...]
    debug: DebugPolicy = DebugPolicy.FORBIDDEN
    secure_boot: SecureBootPolicy = SecureBootPolicy.REQUIRED

    def __post_init__(self) -> None:
        if not self.version:
            raise ConfigError("firmware version is empty")
        if not self.layers:
            raise ConfigError(f"firmware {self.version!r} has no layers")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ConfigError(f"firmware {self.version!r} names a layer twice")

    def layer(self, name: str) -> LayerReference | None:
        for layer in self.layers:
            if layer.name == name:
                return layer
        return None

    @property
    def dice_layers(self) -> tuple[LayerReference, ...]:
        return tuple(layer for layer in self.layers if layer.dice)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductReference:
    """A product (hardware model) and its endorsed firmware versions."""

    product: str
    firmware: tuple[FirmwareReference, ...]
    hwmodel: bytes = b""
    oemid: bytes | int | None = None
    svn_min: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.product:
            raise ConfigError("product name is empty")
        if not self.hwmodel:
            object.__setattr__(self, "hwmodel", self.product.encode("utf-8"))
        versions = [fw.version for fw in self.firmware]
        if len(set(versions)) != len(versions):
            raise ConfigError(f"product {self.product!r} lists a firmware version twice")
        for layer, svn in self.svn_min.items():
            if isinstance(svn, bool) or not isinstance(svn, int) or svn < 0:
                raise ConfigError(f"product {self.product!r}: svn_min[{layer!r}] must be >= 0")

    def firmware_version(self, version: str) -> FirmwareReference | None:
        for fw in self.firmware:
            if fw.version == version:
                return fw
        return None

    def minimum_svn(self, layer: str) -> int | None:
        return self.svn_min.get(layer)


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
            "products": [_product_to_dict(p) for p in self.products],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> ReferenceValues:
        obj = JsonObject(data, "reference values")
        obj.allow("format", "version", "products")
        obj.check_format(REFERENCE_FORMAT, FORMAT_VERSION)
        products = tuple(
            _product_from(item, f"products[{i}]") for i, item in enumerate(obj.array("products"))
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


# ---- JSON helpers (strict) --------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e


def _enum(obj: JsonObject, name: str, enum: type[StrEnum], default: StrEnum) -> Any:
    value = obj.text(name, default.value)
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise ConfigError(f"{obj.path}.{name}: expected one of {allowed}") from None


def _layer_from(data: object, path: str) -> LayerReference:
    obj = JsonObject(data, path)
    obj.allow("name", "digests", "dice")
    digests_obj = JsonObject(obj.required("digests"), f"{path}.digests")
    digests: dict[DigestAlgorithm, bytes] = {}
    for alg_name in digests_obj.data:
        try:
            alg = DigestAlgorithm(alg_name)
        except ValueError:
            raise ConfigError(
                f"{path}.digests.{alg_name}: unknown digest algorithm (sha256, sha384, sha512)"
            ) from None
        value = digests_obj.hexbytes(alg_name)
        if value is None or len(value) != alg.size:
            raise ConfigError(f"{path}.digests.{alg_name}: expected {alg.size * 2} hex digits")
        digests[alg] = value
    if not digests:
        raise ConfigError(f"{path}.digests: at least one digest is required")
    return LayerReference(name=obj.text("name"), digests=digests, dice=obj.boolean("dice", True))


def _firmware_from(data: object, path: str) -> FirmwareReference:
    obj = JsonObject(data, path)
    obj.allow("version", "debug", "secure_boot", "layers")
    layers = tuple(
        _layer_from(item, f"{path}.layers[{i}]") for i, item in enumerate(obj.array("layers"))
    )
    if not layers:
        raise ConfigError(f"{path}.layers: at least one layer is required")
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}.layers: a layer name appears twice")
    return FirmwareReference(
        version=obj.text("version"),
        layers=layers,
        debug=_enum(obj, "debug", DebugPolicy, DebugPolicy.FORBIDDEN),
        secure_boot=_enum(obj, "secure_boot", SecureBootPolicy, SecureBootPolicy.REQUIRED),
    )


def _product_from(data: object, path: str) -> ProductReference:
    obj = JsonObject(data, path)
    obj.allow("product", "hwmodel", "oemid", "svn_min", "firmware")
    svn_obj = obj.obj("svn_min")
    svn_min: dict[str, int] = {}
    for layer in svn_obj.data:
        svn = svn_obj.integer(layer)
        if svn < 0:
            raise ConfigError(f"{svn_obj.path}.{layer}: must be >= 0")
        svn_min[layer] = svn
    firmware = tuple(
        _firmware_from(item, f"{path}.firmware[{i}]")
        for i, item in enumerate(obj.array("firmware"))
    )
    versions = [fw.version for fw in firmware]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"{path}.firmware: a version appears twice")
    return ProductReference(
        product=obj.text("product"),
        hwmodel=obj.hexbytes("hwmodel") or b"",
        oemid=_oemid(obj),
        svn_min=svn_min,
        firmware=firmware,
    )


def _oemid(obj: JsonObject) -> bytes | int | None:
    value = obj.data.get("oemid")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{obj.path}.oemid: a Private Enterprise Number is >= 0")
        return value
    return obj.hexbytes("oemid")


def _product_to_dict(product: ProductReference) -> dict[str, Any]:
    out: dict[str, Any] = {"product": product.product}
    if product.hwmodel != product.product.encode("utf-8"):
        out["hwmodel"] = product.hwmodel.hex()
    if isinstance(product.oemid, bytes):
        out["oemid"] = product.oemid.hex()
    elif product.oemid is not None:
        out["oemid"] = product.oemid
    if product.svn_min:
        out["svn_min"] = dict(product.svn_min)
    out["firmware"] = [
        {
            "version": fw.version,
            "debug": fw.debug.value,
            "secure_boot": fw.secure_boot.value,
            "layers": [
                {
                    "name": layer.name,
                    "digests": {
                        DigestAlgorithm(a).value: d.hex() for a, d in sorted(layer.digests.items())
                    },
                    **({} if layer.dice else {"dice": False}),
                }
                for layer in fw.layers
            ],
        }
        for fw in product.firmware
    ]
    return out
