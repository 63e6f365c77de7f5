"""Endorsed products: the layer digests, firmware versions and SVN minimums a device must match.

The value classes of :mod:`edgetrust.attest.reference` (which re-exports them): a
:class:`ProductReference` lists its endorsed :class:`FirmwareReference` versions, each made of
:class:`LayerReference` digests and a debug / secure boot policy, plus the minimum SVN per layer.
:func:`product_from_dict` and :func:`product_to_dict` read and write one entry of the
reference-values document's ``products`` array (the format is documented in
:mod:`edgetrust.attest.reference`); reading is strict: unknown fields and bad values are a
:class:`~edgetrust.errors.ConfigError` naming the field path. :func:`read_digests` reads one
``digests`` object (a layer's here, an image's in the factory's firmware releases).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from edgetrust.attest.jsondoc import JsonObject
from edgetrust.errors import ConfigError

__all__ = [
    "DebugPolicy",
    "DigestAlgorithm",
    "DigestVerdict",
    "FirmwareReference",
    "LayerReference",
    "ProductReference",
    "SecureBootPolicy",
    "product_from_dict",
    "product_to_dict",
    "read_digests",
]


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


# ---- JSON (one products[] entry) ----------------------------------------------------------------


def _enum(obj: JsonObject, name: str, enum: type[StrEnum], default: StrEnum) -> Any:
    value = obj.text(name, default.value)
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in enum)
        raise ConfigError(f"{obj.path}.{name}: expected one of {allowed}") from None


def read_digests(data: object, path: str) -> dict[DigestAlgorithm, bytes]:
    """A JSON ``digests`` object, ``{"sha256": "<hex>", ...}``: at least one digest, each of its
    algorithm's size. ``path`` names the object in errors (the factory's firmware releases read
    their images' digests with it too)."""
    obj = JsonObject(data, path)
    digests: dict[DigestAlgorithm, bytes] = {}
    for name in obj.data:
        try:
            alg = DigestAlgorithm(name)
        except ValueError:
            known = ", ".join(a.value for a in DigestAlgorithm)
            raise ConfigError(f"{path}.{name}: unknown digest algorithm ({known})") from None
        value = obj.hexbytes(name)
        if value is None or len(value) != alg.size:
            raise ConfigError(f"{path}.{name}: expected {alg.size * 2} hex digits")
        digests[alg] = value
    if not digests:
        raise ConfigError(f"{path}: at least one digest is required")
    return digests


def _layer_from(data: object, path: str) -> LayerReference:
    obj = JsonObject(data, path)
    obj.allow("name", "digests", "dice")
    digests = read_digests(obj.required("digests"), f"{path}.digests")
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


def product_from_dict(data: object, path: str) -> ProductReference:
    """One ``products[]`` entry of a reference-values document; ``path`` names it in errors."""
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


def product_to_dict(product: ProductReference) -> dict[str, Any]:
    """The ``products[]`` entry for ``product`` (defaults left out)."""
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
