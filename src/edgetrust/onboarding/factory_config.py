"""The factory's configuration (``factory.json``) and its firmware releases, as values.

See :mod:`edgetrust.onboarding.factory` for the workspace that holds them and for the format of
``factory.json``. A **firmware release** (``releases/<product>/<version>.json``, format
``edgetrust-firmware-release`` version 1) is one product firmware version and the digests
(SHA-256, SHA-384, SHA-512) of each of its images::

    {"format": "edgetrust-firmware-release", "version": 1,
     "product": "edgetrust-sim", "firmware_version": "1.0.0",
     "layers": [{"name": "bootloader", "version": "1.0.0", "svn": 1,
                 "digests": {"sha256": "<hex>", "sha384": "<hex>", "sha512": "<hex>"}}, ...],
     "components": [{"name": "model", "version": "1", "digests": {...}}, ...]}

Both readers are strict: unknown fields are rejected with the path of the field (a misspelt
setting must not be dropped silently); ``description`` is accepted anywhere.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from edgetrust.attest.dice import KeyAlg
from edgetrust.attest.jsondoc import JsonObject
from edgetrust.attest.jsondoc import parse_json as _parse_json
from edgetrust.attest.products import (
    DebugPolicy,
    DigestAlgorithm,
    FirmwareReference,
    LayerReference,
    SecureBootPolicy,
    read_digests,
)
from edgetrust.errors import ConfigError, WorkspaceError

__all__ = [
    "DEFAULT_PRODUCT",
    "ComponentDefinition",
    "FactoryConfig",
    "FirmwareRelease",
    "LayerDefinition",
    "ProductDefinition",
    "ReleasedImage",
    "check_name",
    "check_version",
    "default_product",
    "demo_image",
    "parse_json",
]

FACTORY_FORMAT: Final = "edgetrust-factory"
RELEASE_FORMAT: Final = "edgetrust-firmware-release"
FORMAT_VERSION: Final = 1
IMAGES_DIR: Final = "images"
DEFAULT_PRODUCT: Final = "edgetrust-sim"
DEMO_IMAGE_SIZE: Final = 4096
#: Every image is endorsed with these digests: a device may report any of them.
ENDORSED_DIGESTS: Final = (DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")


def check_name(what: str, value: object) -> str:
    """``value`` if it is a valid product / layer / component name (it names files)."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid name (letters, digits, '.', '_', '-'; "
            "at most 64, starting with a letter or digit)"
        )
    return value


def check_version(what: str, value: object) -> str:
    """``value`` if it is a valid version string (it names release files)."""
    if not isinstance(value, str) or not _VERSION.match(value):
        raise ConfigError(f"{what} {value!r} is not a valid version (e.g. 1.0.0)")
    return value


# ------------------------------------------------------------------------------------------------
# Configuration (factory.json)
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerDefinition:
    """A DICE layer of a product: its name, version, SVN and default image (workspace path)."""

    name: str
    version: str
    svn: int
    image: str

    def __post_init__(self) -> None:
        check_name("layer name", self.name)
        check_version(f"layer {self.name!r} version", self.version)
        if isinstance(self.svn, bool) or not isinstance(self.svn, int) or self.svn < 0:
            raise ConfigError(f"layer {self.name!r}: svn must be an integer >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentDefinition:
    """A measured component of a product (application, model) that is not a DICE layer."""

    name: str
    version: str
    image: str

    def __post_init__(self) -> None:
        check_name("component name", self.name)
        check_version(f"component {self.name!r} version", self.version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ProductDefinition:
    """A product the factory makes: its DICE layers, components and default release."""

    name: str
    firmware_version: str
    layers: tuple[LayerDefinition, ...]
    components: tuple[ComponentDefinition, ...] = ()
    secure_boot: bool = True
    svn_min: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("product name", self.name)
        check_version(f"product {self.name!r} firmware version", self.firmware_version)
        if not self.layers:
            raise ConfigError(f"product {self.name!r} has no layers")
        names = [x.name for x in self.layers] + [c.name for c in self.components]
        if len(set(names)) != len(names):
            raise ConfigError(f"product {self.name!r}: layer and component names must be unique")
        for layer, svn in self.svn_min.items():
            if layer not in names:
                raise ConfigError(f"product {self.name!r}: svn_min names unknown layer {layer!r}")
            if isinstance(svn, bool) or not isinstance(svn, int) or svn < 0:
                raise ConfigError(f"product {self.name!r}: svn_min[{layer!r}] must be >= 0")
        object.__setattr__(self, "svn_min", MappingProxyType(dict(self.svn_min)))

    def layer(self, name: str) -> LayerDefinition | None:
        return next((x for x in self.layers if x.name == name), None)

    def component(self, name: str) -> ComponentDefinition | None:
        return next((c for c in self.components if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "firmware_version": self.firmware_version,
            "secure_boot": self.secure_boot,
            "svn_min": dict(self.svn_min),
            "layers": [
                {"name": x.name, "version": x.version, "svn": x.svn, "image": x.image}
                for x in self.layers
            ],
            "components": [
                {"name": c.name, "version": c.version, "image": c.image} for c in self.components
            ],
        }


def default_product(name: str = DEFAULT_PRODUCT) -> ProductDefinition:
    """The demo product: two DICE layers (bootloader, firmware) and two measured components
    (the application and the model), all at version 1.0.0 / SVN 1."""
    check_name("product name", name)
    base = f"{IMAGES_DIR}/{name}"
    return ProductDefinition(
        name=name,
        firmware_version="1.0.0",
        layers=(
            LayerDefinition(
                name="bootloader", version="1.0.0", svn=1, image=f"{base}/bootloader.bin"
            ),
            LayerDefinition(name="firmware", version="1.0.0", svn=1, image=f"{base}/firmware.bin"),
        ),
        components=(
            ComponentDefinition(
                name="application", version="1.0.0", image=f"{base}/application.bin"
            ),
            ComponentDefinition(name="model", version="1", image=f"{base}/model.bin"),
        ),
        svn_min={"bootloader": 1, "firmware": 1},
    )


def demo_image(product: str, name: str, version: str, size: int = DEMO_IMAGE_SIZE) -> bytes:
    """A deterministic demo image: a readable header, then SHAKE-256 of it up to ``size`` bytes.

    The same product, name and version always give the same bytes, so a workspace made again
    endorses the same digests.
    """
    header = f"EDGETRUST DEMO IMAGE {product}/{name} {version}\n".encode()
    return header + hashlib.shake_256(b"edgetrust-demo-image\x00" + header).digest(
        max(size - len(header), 0)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FactoryConfig:
    """The content of ``factory.json``."""

    organization: str
    oemid: bytes
    products: tuple[ProductDefinition, ...]
    device_key_alg: KeyAlg = KeyAlg.P256

    def __post_init__(self) -> None:
        if not isinstance(self.organization, str) or not self.organization.strip():
            raise ConfigError("organization must be a non-empty string")
        if len(self.oemid) not in (3, 16):
            raise ConfigError("oemid must be 3 bytes (IEEE OUI) or 16 bytes (random OEM ID)")
        if not self.products:
            raise ConfigError("a factory makes at least one product")
        names = [p.name for p in self.products]
        if len(set(names)) != len(names):
            raise ConfigError(f"a product is defined twice: {names}")
        try:
            object.__setattr__(self, "device_key_alg", KeyAlg(self.device_key_alg))
        except ValueError as e:
            raise ConfigError(f"device_key_alg {self.device_key_alg!r}: p256 or ed25519") from e

    def product(self, name: str | None = None) -> ProductDefinition:
        """The product called ``name`` (the first one when ``None``)."""
        if name is None:
            return self.products[0]
        for product in self.products:
            if product.name == name:
                return product
        known = ", ".join(p.name for p in self.products)
        raise ConfigError(f"unknown product {name!r} (this factory makes: {known})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FACTORY_FORMAT,
            "version": FORMAT_VERSION,
            "organization": self.organization,
            "oemid": self.oemid.hex(),
            "device_key_alg": self.device_key_alg.value,
            "products": [p.to_dict() for p in self.products],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: object) -> FactoryConfig:
        obj = JsonObject(data, "factory.json")
        obj.allow("format", "version", "organization", "oemid", "device_key_alg", "products")
        obj.check_format(FACTORY_FORMAT, FORMAT_VERSION)
        products = tuple(
            _product_from(item, f"factory.json.products[{i}]")
            for i, item in enumerate(obj.array("products"))
        )
        return cls(
            organization=obj.text("organization"),
            oemid=obj.required_hexbytes("oemid"),
            device_key_alg=obj.text("device_key_alg", "p256"),  # type: ignore[arg-type]
            products=products,
        )


def _product_from(data: object, path: str) -> ProductDefinition:
    obj = JsonObject(data, path)
    obj.allow("name", "firmware_version", "secure_boot", "svn_min", "layers", "components")
    svn_obj = JsonObject(obj.data.get("svn_min", {}), f"{path}.svn_min")
    layers = []
    for i, item in enumerate(obj.array("layers")):
        layer = JsonObject(item, f"{path}.layers[{i}]")
        layer.allow("name", "version", "svn", "image")
        layers.append(
            LayerDefinition(
                name=layer.text("name"),
                version=layer.text("version"),
                svn=layer.integer("svn"),
                image=layer.text("image"),
            )
        )
    components = []
    for i, item in enumerate(obj.array("components", default=[])):
        component = JsonObject(item, f"{path}.components[{i}]")
        component.allow("name", "version", "image")
        components.append(
            ComponentDefinition(
                name=component.text("name"),
                version=component.text("version"),
                image=component.text("image"),
            )
        )
    secure_boot = obj.data.get("secure_boot", True)
    if not isinstance(secure_boot, bool):
        raise ConfigError(f"{path}.secure_boot: expected true or false")
    return ProductDefinition(
        name=obj.text("name"),
        firmware_version=obj.text("firmware_version"),
        layers=tuple(layers),
        components=tuple(components),
        secure_boot=secure_boot,
        svn_min={name: svn_obj.integer(name) for name in svn_obj.data if name != "description"},
    )


# ------------------------------------------------------------------------------------------------
# Firmware releases
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleasedImage:
    """One image of a release: a DICE layer (with its SVN) or a measured component."""

    name: str
    version: str
    digests: Mapping[DigestAlgorithm, bytes]
    svn: int | None = None
    dice: bool = True

    @classmethod
    def of(
        cls, name: str, version: str, data: bytes, *, svn: int | None, dice: bool
    ) -> ReleasedImage:
        digests = {alg: alg.digest(data) for alg in ENDORSED_DIGESTS}
        return cls(name=name, version=version, digests=digests, svn=svn, dice=dice)

    def reference(self) -> LayerReference:
        return LayerReference(name=self.name, digests=dict(self.digests), dice=self.dice)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.svn is not None:
            out["svn"] = self.svn
        out["digests"] = {alg.value: d.hex() for alg, d in sorted(self.digests.items())}
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareRelease:
    """A product's firmware version and the digest of each of its images."""

    product: str
    firmware_version: str
    layers: tuple[ReleasedImage, ...]
    components: tuple[ReleasedImage, ...] = ()

    def same_images(self, other: FirmwareRelease) -> bool:
        """Whether ``other`` names the same images (names, versions, SVNs and digests)."""
        return (self.product, self.firmware_version, self.layers, self.components) == (
            other.product,
            other.firmware_version,
            other.layers,
            other.components,
        )

    def differences(self, other: FirmwareRelease) -> list[str]:
        mine = {i.name: i for i in self.layers + self.components}
        theirs = {i.name: i for i in other.layers + other.components}
        return sorted(n for n in mine.keys() | theirs.keys() if mine.get(n) != theirs.get(n))

    def reference(self, *, secure_boot: bool) -> FirmwareReference:
        return FirmwareReference(
            version=self.firmware_version,
            layers=tuple(i.reference() for i in self.layers + self.components),
            debug=DebugPolicy.FORBIDDEN,
            secure_boot=SecureBootPolicy.REQUIRED if secure_boot else SecureBootPolicy.OPTIONAL,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RELEASE_FORMAT,
            "version": FORMAT_VERSION,
            "product": self.product,
            "firmware_version": self.firmware_version,
            "layers": [i.to_dict() for i in self.layers],
            "components": [i.to_dict() for i in self.components],
        }

    @classmethod
    def from_dict(cls, data: object, path: str) -> FirmwareRelease:
        obj = JsonObject(data, path)
        obj.allow("format", "version", "product", "firmware_version", "layers", "components")
        obj.check_format(RELEASE_FORMAT, FORMAT_VERSION)
        return cls(
            product=obj.text("product"),
            firmware_version=obj.text("firmware_version"),
            layers=tuple(
                _image_from(x, f"{path}.layers[{i}]", dice=True)
                for i, x in enumerate(obj.array("layers"))
            ),
            components=tuple(
                _image_from(x, f"{path}.components[{i}]", dice=False)
                for i, x in enumerate(obj.array("components", default=[]))
            ),
        )


def _image_from(data: object, path: str, *, dice: bool) -> ReleasedImage:
    obj = JsonObject(data, path)
    obj.allow("name", "version", "svn", "digests")
    digests = read_digests(obj.required("digests"), f"{path}.digests")
    return ReleasedImage(
        name=obj.text("name"),
        version=obj.text("version"),
        svn=obj.integer("svn") if dice else None,
        digests=digests,
        dice=dice,
    )


# ---- strict JSON --------------------------------------------------------------------------------


def parse_json(text: str, what: str) -> object:
    """A factory file's JSON: invalid JSON is a WorkspaceError naming the file."""
    return _parse_json(text, what, error=WorkspaceError)
