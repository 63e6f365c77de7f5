"""The manufacturer's workspace: its CA, its products, their firmware releases, its endorsements.

A factory workspace is a directory (mode 0700)::

    FACTORY_DIR/
      factory.json                      the configuration (below); people may edit it
      ca/root-cert.pem                  the manufacturer root: the trust anchor verifiers import
      ca/root-key.pem                   0600. With an intermediate (the default) provisioning never
                                        uses it: move it offline (``CertificateAuthority.load``
                                        and every factory command work without it) and bring it
                                        back only to renew the intermediate
      ca/intermediate-cert.pem          signs the DeviceID certificates
      ca/intermediate-key.pem           0600
      images/<product>/<name>.bin       the default image of every layer and component
      releases/<product>/<version>.json every firmware release devices were provisioned with:
                                        name, version, SVN and digests of each image. The
                                        endorsement export is made from these files

``factory.json`` (format ``edgetrust-factory`` version 1)::

    {
      "format": "edgetrust-factory", "version": 1,
      "organization": "edgetrust",
      "oemid": "<32 hex>",                 # random OEM ID (RFC 9711 4.2.3), the devices' oemid
      "device_key_alg": "p256",            # DICE key algorithm of the devices (p256 | ed25519)
      "products": [
        {
          "name": "edgetrust-sim",          # the devices' hwmodel (UTF-8) and reference product
          "firmware_version": "1.0.0",      # the release devices get by default (EAT swversion)
          "secure_boot": true,              # the devices boot securely; verifiers require it
          "svn_min": {"bootloader": 1, "firmware": 1},   # anti-rollback minimum per layer
          "layers": [                       # DICE layers, boot order
            {"name": "bootloader", "version": "1.0.0", "svn": 1,
             "image": "images/edgetrust-sim/bootloader.bin"}, ...],
          "components": [                   # measured, not DICE layers
            {"name": "application", "version": "1.0.0",
             "image": "images/edgetrust-sim/application.bin"}, ...]
        }
      ]
    }

Unknown fields are rejected (a misspelt setting must not be dropped silently); ``description``
is accepted anywhere. Image paths are relative to the workspace and may not leave it.

A **firmware release** is one (product, firmware version) and the exact digest of every image.
``edgetrust factory init`` records the default release; provisioning with other images
(``--firmware LAYER=FILE``) records a new release under ``--firmware-version`` and refuses to
give one version two different sets of images -- a verifier's reference values name one digest
per layer and version. :meth:`FactoryWorkspace.endorsements` turns every release into
:class:`~edgetrust.attest.reference.ReferenceValues` (SHA-256, SHA-384 and SHA-512 of every
image, the product's SVN minimums, debug forbidden, secure boot required) next to the trust
anchors, as the :class:`~edgetrust.attest.reference.EndorsementBundle` that
``edgetrust verifier endorse FILE`` imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from edgetrust.attest.dice import KeyAlg
from edgetrust.attest.reference import (
    DebugPolicy,
    DigestAlgorithm,
    EndorsementBundle,
    FirmwareReference,
    LayerReference,
    ProductReference,
    ReferenceValues,
    SecureBootPolicy,
)
from edgetrust.certs.ca import (
    INTERMEDIATE_CERT_FILE,
    ROOT_CERT_FILE,
    CertificateAuthority,
)
from edgetrust.certs.keys import KeyAlgorithm
from edgetrust.certs.loading import read_certificate
from edgetrust.errors import ConfigError, Error, WorkspaceError

__all__ = [
    "DEFAULT_PRODUCT",
    "FACTORY_FILE",
    "ComponentDefinition",
    "FactoryConfig",
    "FactoryWorkspace",
    "FirmwareImages",
    "FirmwareRelease",
    "LayerDefinition",
    "ProductDefinition",
    "ReleasedImage",
    "default_product",
    "demo_image",
]

FACTORY_FORMAT: Final = "edgetrust-factory"
RELEASE_FORMAT: Final = "edgetrust-firmware-release"
FORMAT_VERSION: Final = 1
FACTORY_FILE: Final = "factory.json"
CA_DIR: Final = "ca"
IMAGES_DIR: Final = "images"
RELEASES_DIR: Final = "releases"
DEFAULT_PRODUCT: Final = "edgetrust-sim"
DEFAULT_ORGANIZATION: Final = "edgetrust"
DEMO_IMAGE_SIZE: Final = 4096
#: Every image is endorsed with these digests: a device may report any of them.
ENDORSED_DIGESTS: Final = (DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$")


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{what} {value!r} is not a valid name (letters, digits, '.', '_', '-'; "
            "at most 64, starting with a letter or digit)"
        )
    return value


def _check_version(what: str, value: object) -> str:
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
        _check_name("layer name", self.name)
        _check_version(f"layer {self.name!r} version", self.version)
        if isinstance(self.svn, bool) or not isinstance(self.svn, int) or self.svn < 0:
            raise ConfigError(f"layer {self.name!r}: svn must be an integer >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentDefinition:
    """A measured component of a product (application, model) that is not a DICE layer."""

    name: str
    version: str
    image: str

    def __post_init__(self) -> None:
        _check_name("component name", self.name)
        _check_version(f"component {self.name!r} version", self.version)


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
        _check_name("product name", self.name)
        _check_version(f"product {self.name!r} firmware version", self.firmware_version)
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
    _check_name("product name", name)
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
        obj = _Obj(data, "factory.json")
        obj.allow("format", "version", "organization", "oemid", "device_key_alg", "products")
        obj.check_format(FACTORY_FORMAT)
        products = tuple(
            _product_from(item, f"factory.json.products[{i}]")
            for i, item in enumerate(obj.array("products"))
        )
        return cls(
            organization=obj.text("organization"),
            oemid=obj.hexbytes("oemid"),
            device_key_alg=obj.text("device_key_alg", "p256"),  # type: ignore[arg-type]
            products=products,
        )


def _product_from(data: object, path: str) -> ProductDefinition:
    obj = _Obj(data, path)
    obj.allow("name", "firmware_version", "secure_boot", "svn_min", "layers", "components")
    svn_obj = _Obj(obj.data.get("svn_min", {}), f"{path}.svn_min")
    layers = []
    for i, item in enumerate(obj.array("layers")):
        layer = _Obj(item, f"{path}.layers[{i}]")
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
        component = _Obj(item, f"{path}.components[{i}]")
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
        obj = _Obj(data, path)
        obj.allow("format", "version", "product", "firmware_version", "layers", "components")
        obj.check_format(RELEASE_FORMAT)
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
    obj = _Obj(data, path)
    obj.allow("name", "version", "svn", "digests")
    digests_obj = _Obj(obj.required("digests"), f"{path}.digests")
    digests: dict[DigestAlgorithm, bytes] = {}
    for name in digests_obj.data:
        try:
            alg = DigestAlgorithm(name)
        except ValueError:
            raise ConfigError(f"{path}.digests.{name}: unknown digest algorithm") from None
        value = digests_obj.hexbytes(name)
        if len(value) != alg.size:
            raise ConfigError(f"{path}.digests.{name}: expected {alg.size * 2} hex digits")
        digests[alg] = value
    if not digests:
        raise ConfigError(f"{path}.digests: at least one digest is required")
    return ReleasedImage(
        name=obj.text("name"),
        version=obj.text("version"),
        svn=obj.integer("svn") if dice else None,
        digests=digests,
        dice=dice,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class FirmwareImages:
    """The images one provisioning batch writes into every device, and their release."""

    product: ProductDefinition
    firmware_version: str
    layers: tuple[tuple[LayerDefinition, bytes], ...] = field(repr=False)
    components: tuple[tuple[ComponentDefinition, bytes], ...] = field(repr=False)

    @property
    def release(self) -> FirmwareRelease:
        return FirmwareRelease(
            product=self.product.name,
            firmware_version=self.firmware_version,
            layers=tuple(
                ReleasedImage.of(d.name, d.version, data, svn=d.svn, dice=True)
                for d, data in self.layers
            ),
            components=tuple(
                ReleasedImage.of(d.name, d.version, data, svn=None, dice=False)
                for d, data in self.components
            ),
        )


# ------------------------------------------------------------------------------------------------
# The workspace
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class FactoryWorkspace:
    """A factory directory (see the module documentation)."""

    path: Path
    config: FactoryConfig

    @property
    def config_file(self) -> Path:
        return self.path / FACTORY_FILE

    @property
    def ca_dir(self) -> Path:
        return self.path / CA_DIR

    @property
    def releases_dir(self) -> Path:
        return self.path / RELEASES_DIR

    # -- creation and loading ---------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        *,
        products: Sequence[str] = (DEFAULT_PRODUCT,),
        organization: str = DEFAULT_ORGANIZATION,
        intermediate: bool = True,
        key_alg: KeyAlgorithm | str = KeyAlgorithm.P256,
        force: bool = False,
        now: datetime | None = None,
    ) -> FactoryWorkspace:
        """Make a new workspace: CA (root + intermediate), factory.json, demo images, releases.

        Everything is built in a temporary sibling directory and renamed into place, so a
        failure leaves nothing half-made. An existing workspace (or any non-empty directory)
        is refused unless ``force``, which replaces it -- its CA keys included.
        """
        target = Path(directory)
        if not products:
            raise ConfigError("a factory makes at least one product")
        names = [_check_name("product name", p) for p in products]
        if len(set(names)) != len(names):
            raise ConfigError(f"a product is named twice: {names}")
        _refuse_existing(target, force=force)
        config = FactoryConfig(
            organization=organization,
            oemid=secrets.token_bytes(16),
            products=tuple(default_product(n) for n in names),
        )
        ca = CertificateAuthority.create(
            subject=_ca_subject(organization, "manufacturer root CA"),
            intermediate=intermediate,
            intermediate_subject=(
                _ca_subject(organization, "manufacturer intermediate CA") if intermediate else None
            ),
            key_algorithm=key_alg,
            now=now,
        )
        parent = target.absolute().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
        except OSError as e:
            raise WorkspaceError(f"{target}: cannot create the workspace: {e}") from e
        try:
            workspace = cls(path=staging, config=config)
            ca.save(workspace.ca_dir)
            for product in config.products:
                images = workspace._write_demo_images(product)
                workspace.record_release(images.release)
            _write_text(staging / FACTORY_FILE, config.to_json())
            _install(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls(path=target, config=config)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> FactoryWorkspace:
        """Read ``factory.json`` (strictly) from a workspace."""
        path = Path(directory)
        config_file = path / FACTORY_FILE
        if not config_file.is_file():
            raise WorkspaceError(f"{path}: not a factory workspace ({FACTORY_FILE} is missing)")
        try:
            text = config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise WorkspaceError(f"{config_file}: cannot read: {e}") from e
        try:
            config = FactoryConfig.from_dict(_parse_json(text, str(config_file)))
        except WorkspaceError:
            raise
        except ConfigError as e:
            raise WorkspaceError(f"{config_file}: {e.message}") from e
        return cls(path=path, config=config)

    # -- CA -----------------------------------------------------------------------------------

    def certificate_authority(self) -> CertificateAuthority:
        """The manufacturer CA (the root key may be offline when there is an intermediate)."""
        return CertificateAuthority.load(self.ca_dir)

    def root_certificate(self) -> x509.Certificate:
        return read_certificate(self.ca_dir / ROOT_CERT_FILE)

    def intermediate_certificate(self) -> x509.Certificate | None:
        path = self.ca_dir / INTERMEDIATE_CERT_FILE
        return read_certificate(path) if path.exists() else None

    # -- images and releases ------------------------------------------------------------------

    def image_path(self, relative: str) -> Path:
        """A workspace path from factory.json, refusing paths that leave the workspace."""
        path = (self.path / relative).resolve()
        if not path.is_relative_to(self.path.resolve()):
            raise WorkspaceError(f"image path {relative!r} points outside the workspace")
        return path

    def firmware_images(
        self,
        product: str | None = None,
        *,
        layers: Mapping[str, str | os.PathLike[str]] | None = None,
        components: Mapping[str, str | os.PathLike[str]] | None = None,
        firmware_version: str | None = None,
    ) -> FirmwareImages:
        """The images a batch installs: the product's defaults, replaced by ``layers`` /
        ``components`` files (name -> path) where given."""
        definition = self.config.product(product)
        layers, components = dict(layers or {}), dict(components or {})
        for name in layers:
            if definition.layer(name) is None:
                known = ", ".join(x.name for x in definition.layers)
                raise ConfigError(f"product {definition.name!r} has no layer {name!r} ({known})")
        for name in components:
            if definition.component(name) is None:
                known = ", ".join(c.name for c in definition.components) or "none"
                raise ConfigError(
                    f"product {definition.name!r} has no component {name!r} ({known})"
                )
        version = _check_version(
            "firmware version", firmware_version or definition.firmware_version
        )
        return FirmwareImages(
            product=definition,
            firmware_version=version,
            layers=tuple(
                (d, self._image(d.name, d.image, layers.get(d.name))) for d in definition.layers
            ),
            components=tuple(
                (c, self._image(c.name, c.image, components.get(c.name)))
                for c in definition.components
            ),
        )

    def _image(self, name: str, default: str, override: str | os.PathLike[str] | None) -> bytes:
        path = Path(override) if override is not None else self.image_path(default)
        try:
            return path.read_bytes()
        except OSError as e:
            what = "firmware file" if override is not None else "default image"
            raise ConfigError(f"{name}: cannot read {what} {path}: {e.strerror or e}") from e

    def _write_demo_images(self, product: ProductDefinition) -> FirmwareImages:
        entries: list[tuple[str, str, str]] = [(x.name, x.version, x.image) for x in product.layers]
        entries += [(c.name, c.version, c.image) for c in product.components]
        for name, version, image in entries:
            path = self.image_path(image)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(demo_image(product.name, name, version))
        return self.firmware_images(product.name)

    def release_file(self, product: str, firmware_version: str) -> Path:
        _check_name("product name", product)
        _check_version("firmware version", firmware_version)
        return self.releases_dir / product / f"{firmware_version}.json"

    def release(self, product: str, firmware_version: str) -> FirmwareRelease | None:
        path = self.release_file(product, firmware_version)
        if not path.exists():
            return None
        return _load_release(path)

    def releases(self) -> list[FirmwareRelease]:
        """Every recorded release, by product then version."""
        if not self.releases_dir.is_dir():
            return []
        return [_load_release(p) for p in sorted(self.releases_dir.glob("*/*.json")) if p.is_file()]

    def check_release(self, release: FirmwareRelease) -> bool:
        """Whether ``release`` is new; a :class:`ConfigError` when its firmware version is
        already recorded with other images (one version is one set of images)."""
        existing = self.release(release.product, release.firmware_version)
        if existing is None:
            return True
        if not existing.same_images(release):
            raise ConfigError(
                f"product {release.product!r} firmware {release.firmware_version!r} is already "
                f"released with other images ({', '.join(existing.differences(release))} "
                "differ); give these images a new --firmware-version",
            )
        return False

    def record_release(self, release: FirmwareRelease) -> bool:
        """Record ``release``; ``False`` when it is already recorded with the same images
        (see :meth:`check_release` for the conflict)."""
        if not self.check_release(release):
            return False
        path = self.release_file(release.product, release.firmware_version)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_text(path, json.dumps(release.to_dict(), indent=2) + "\n")
        except OSError as e:
            raise WorkspaceError(f"{path}: cannot record the release: {e}") from e
        return True

    # -- endorsements -------------------------------------------------------------------------

    def reference_values(self, products: Sequence[str] | None = None) -> ReferenceValues:
        """Reference values of every recorded release of ``products`` (default: all)."""
        wanted = (
            [self.config.product(n) for n in products]
            if products is not None
            else list(self.config.products)
        )
        releases = self.releases()
        out: list[ProductReference] = []
        for definition in wanted:
            firmware = tuple(
                r.reference(secure_boot=definition.secure_boot)
                for r in releases
                if r.product == definition.name
            )
            if not firmware:
                raise WorkspaceError(
                    f"product {definition.name!r} has no recorded release in {self.releases_dir}"
                )
            out.append(
                ProductReference(
                    product=definition.name,
                    oemid=self.config.oemid,
                    svn_min=dict(definition.svn_min),
                    firmware=firmware,
                )
            )
        return ReferenceValues(products=tuple(out))

    def endorsements(
        self, *, products: Sequence[str] | None = None, include_intermediate: bool = False
    ) -> EndorsementBundle:
        """The bundle verifiers import: the manufacturer root (and, on request, the
        intermediate) as trust anchors, and the reference values of every release."""
        anchors: list[x509.Certificate] = [self.root_certificate()]
        if include_intermediate:
            middle = self.intermediate_certificate()
            if middle is None:
                raise WorkspaceError(f"{self.ca_dir}: this factory has no intermediate CA")
            anchors.append(middle)
        return EndorsementBundle.build(
            anchors=anchors, reference_values=self.reference_values(products)
        )


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def _refuse_existing(target: Path, *, force: bool) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise WorkspaceError(f"{target} exists and is not a directory")
    if force:
        return
    if (target / FACTORY_FILE).exists() or (target / CA_DIR).exists():
        raise WorkspaceError(
            f"{target} already holds a factory workspace; refusing to overwrite it "
            "(--force replaces it, CA keys included)"
        )
    if any(target.iterdir()):
        raise WorkspaceError(f"{target} is not empty; refusing to make a workspace there")


def _install(staging: Path, target: Path) -> None:
    """Move the finished ``staging`` directory to ``target`` (replacing what is there)."""
    os.chmod(staging, 0o700)
    if target.exists() and any(target.iterdir()):
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=staging.parent))
        os.rename(target, old / "workspace")
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(old / "workspace", target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, target)  # an empty directory may be replaced by rename(2)


def _write_text(path: Path, text: str) -> None:
    """Write a file atomically (temporary file in the same directory, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_release(path: Path) -> FirmwareRelease:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WorkspaceError(f"{path}: cannot read: {e}") from e
    try:
        release = FirmwareRelease.from_dict(_parse_json(text, str(path)), path.name)
    except WorkspaceError:
        raise
    except ConfigError as e:
        raise WorkspaceError(f"{path}: {e.message}") from e
    if path.parent.name != release.product or path.stem != release.firmware_version:
        raise WorkspaceError(f"{path}: names {release.product}/{release.firmware_version}")
    return release


def _ca_subject(organization: str, common_name: str) -> x509.Name:
    try:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization.strip()[:64]),
                x509.NameAttribute(
                    NameOID.COMMON_NAME, f"{organization.strip()} {common_name}"[:64]
                ),
            ]
        )
    except ValueError as e:
        raise ConfigError(f"organization {organization!r} cannot name a CA: {e}") from e


# ---- strict JSON --------------------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ConfigError(f"duplicate JSON key {key!r}")
        result[key] = value
    return result


def _parse_json(text: str, what: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except Error:
        raise
    except (ValueError, RecursionError) as e:
        raise WorkspaceError(f"{what}: not valid JSON: {e}") from e


class _Obj:
    """A JSON object being read, with the path of every field for error messages."""

    __slots__ = ("data", "path")

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        self.data: dict[str, Any] = data
        self.path = path

    def allow(self, *names: str) -> None:
        for key in self.data:
            if key not in names and key != "description":
                raise ConfigError(f"{self.path}.{key}: unknown field")

    def check_format(self, expected: str) -> None:
        fmt = self.text("format")
        if fmt != expected:
            raise ConfigError(f"{self.path}.format: expected {expected!r}, found {fmt!r}")
        if self.integer("version") != FORMAT_VERSION:
            raise ConfigError(f"{self.path}.version: unsupported (this build reads 1)")

    def required(self, name: str) -> Any:
        if name not in self.data:
            raise ConfigError(f"{self.path}.{name}: required field missing")
        return self.data[name]

    def text(self, name: str, default: str | None = None) -> str:
        if name not in self.data and default is not None:
            return default
        value = self.required(name)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.path}.{name}: expected a non-empty string")
        return value

    def integer(self, name: str) -> int:
        value = self.required(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.path}.{name}: expected an integer")
        return value

    def hexbytes(self, name: str) -> bytes:
        value = self.text(name)
        try:
            return bytes.fromhex(value)
        except ValueError:
            raise ConfigError(f"{self.path}.{name}: expected a hexadecimal string") from None

    def array(self, name: str, *, default: list[Any] | None = None) -> list[Any]:
        if name not in self.data and default is not None:
            return default
        value = self.required(name)
        if not isinstance(value, list):
            raise ConfigError(f"{self.path}.{name}: expected a JSON array")
        return value
