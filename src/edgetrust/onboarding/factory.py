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

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.x509.oid import NameOID

from edgetrust.attest.reference import EndorsementBundle, ProductReference, ReferenceValues
from edgetrust.certs.ca import INTERMEDIATE_CERT_FILE, ROOT_CERT_FILE, CertificateAuthority
from edgetrust.certs.keys import KeyAlgorithm
from edgetrust.certs.loading import read_certificate
from edgetrust.errors import ConfigError, WorkspaceError
from edgetrust.onboarding.factory_config import (
    DEFAULT_PRODUCT,
    ComponentDefinition,
    FactoryConfig,
    FirmwareRelease,
    LayerDefinition,
    ProductDefinition,
    ReleasedImage,
    check_name,
    check_version,
    default_product,
    demo_image,
    parse_json,
)

__all__ = ["DEFAULT_ORGANIZATION", "FACTORY_FILE", "FactoryWorkspace", "FirmwareImages"]

FACTORY_FILE: Final = "factory.json"
CA_DIR: Final = "ca"
RELEASES_DIR: Final = "releases"
DEFAULT_ORGANIZATION: Final = "edgetrust"


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
        names = [check_name("product name", p) for p in products]
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
            config = FactoryConfig.from_dict(parse_json(text, str(config_file)))
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
        version = check_version("firmware version", firmware_version or definition.firmware_version)
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
        check_name("product name", product)
        check_version("firmware version", firmware_version)
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
        release = FirmwareRelease.from_dict(parse_json(text, str(path)), path.name)
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
