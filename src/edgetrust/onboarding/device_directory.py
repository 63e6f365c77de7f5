"""The device directory: its layout, the manifest (``device.json``) and safe file access.

Written by the factory (:mod:`edgetrust.onboarding.factory_batch`), read by the simulated device
(:mod:`edgetrust.onboarding.device`).

Device directory layout (format ``edgetrust-device`` version 1). The factory writes everything but
``operational/``; the device writes ``operational/`` when it onboards::

    DEVICE_DIR/
      device.json            the manifest (below), written by the factory
      uds.bin                the Unique Device Secret: 32 random bytes, mode 0600, never leaves
      device-id.pem          the DeviceID certificate, then the manufacturer intermediates above it
                             (PEM, leaf first; the manufacturer root is not included)
      firmware/<layer>.bin   the image of every DICE layer, measured at every boot
      components/<name>.bin  measured components (the loaded application, the model): reported in
                             the EAT's measurements but not DICE layers
      operational/           written at onboarding, replaced at renewal:
        key.pem              the TLS private key (PKCS#8 PEM, mode 0600), named by the EAT's cnf
        cert.pem             the operational client certificate, then its issuers (cluster CA)
        ear.bin              the signed EAR the verifier returned

``device.json``::

    {
      "format": "edgetrust-device", "version": 1,
      "ueid": "<hex>",                  # the UEID in the DeviceID certificate (tcg-dice-Ueid)
      "product": "edgetrust-sim",       # the reference-values product; hwmodel = its UTF-8 bytes
      "oemid": "<hex>",                 # optional
      "firmware_version": "1.0.0",      # the EAT's swversion: selects the reference values
      "key_alg": "p256",                # DICE key algorithm of every layer (attest.dice.KeyAlg)
      "mode": "normal",                 # DICE mode: not_configured | normal | debug | recovery
      "secure_boot": true,
      "layers": [{"name": "bootloader", "file": "firmware/bootloader.bin",
                  "version": "1.0.0", "svn": 1}, ...],
      "components": [{"name": "model", "file": "components/model.bin", "version": "1"}]
    }

Paths in the manifest are relative to the directory and may not leave it. Tampering with any file
under ``firmware/`` or ``components/`` changes the measurements the device reports (and, for a DICE
layer, its alias key and certificate), so a verifier with reference values refuses it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgetrust.errors import WorkspaceError

__all__ = [
    "COMPONENTS_DIR",
    "DEVICE_FORMAT",
    "DEVICE_FORMAT_VERSION",
    "DEVICE_ID_FILE",
    "FIRMWARE_DIR",
    "MANIFEST",
    "OPERATIONAL_CERT",
    "OPERATIONAL_DIR",
    "OPERATIONAL_EAR",
    "OPERATIONAL_KEY",
    "UDS_FILE",
    "UDS_SIZE",
    "ComponentFile",
    "DeviceManifest",
    "LayerFile",
    "layer_files",
    "resolve_inside",
    "write_private",
]

DEVICE_FORMAT = "edgetrust-device"
DEVICE_FORMAT_VERSION = 1
MANIFEST = "device.json"
UDS_FILE = "uds.bin"
DEVICE_ID_FILE = "device-id.pem"
FIRMWARE_DIR = "firmware"
COMPONENTS_DIR = "components"
OPERATIONAL_DIR = "operational"
OPERATIONAL_KEY = "key.pem"
OPERATIONAL_CERT = "cert.pem"
OPERATIONAL_EAR = "ear.bin"
UDS_SIZE = 32

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MODES = ("not_configured", "normal", "debug", "recovery")


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerFile:
    """One DICE layer as the manifest records it: its image file, version and SVN."""

    name: str
    file: str
    version: str
    svn: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentFile:
    """A measured component that is not a DICE layer (application, model)."""

    name: str
    file: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceManifest:
    """The factory's description of one device (``device.json``)."""

    ueid: bytes
    product: str
    firmware_version: str
    layers: tuple[LayerFile, ...]
    components: tuple[ComponentFile, ...] = ()
    oemid: bytes | None = None
    key_alg: str = "p256"
    mode: str = "normal"
    secure_boot: bool = True

    def __post_init__(self) -> None:
        if not self.ueid:
            raise WorkspaceError("device manifest: ueid is empty")
        if not self.product:
            raise WorkspaceError("device manifest: product is empty")
        if not self.layers:
            raise WorkspaceError("device manifest: a device has at least one layer")
        if self.mode not in _MODES:
            raise WorkspaceError(f"device manifest: mode {self.mode!r} is not one of {_MODES}")
        names = [x.name for x in self.layers] + [c.name for c in self.components]
        for name in names:
            if not _NAME.match(name):
                raise WorkspaceError(f"device manifest: bad layer/component name {name!r}")
        if len(set(names)) != len(names):
            raise WorkspaceError("device manifest: layer and component names must be unique")
        for layer in self.layers:
            if layer.svn < 0:
                raise WorkspaceError(f"device manifest: layer {layer.name!r} has a negative SVN")

    @property
    def hwmodel(self) -> bytes:
        return self.product.encode()

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": DEVICE_FORMAT,
            "version": DEVICE_FORMAT_VERSION,
            "ueid": self.ueid.hex(),
            "product": self.product,
        }
        if self.oemid is not None:
            data["oemid"] = self.oemid.hex()
        data |= {
            "firmware_version": self.firmware_version,
            "key_alg": self.key_alg,
            "mode": self.mode,
            "secure_boot": self.secure_boot,
            "layers": [
                {"name": x.name, "file": x.file, "version": x.version, "svn": x.svn}
                for x in self.layers
            ],
            "components": [
                {"name": c.name, "file": c.file, "version": c.version} for c in self.components
            ],
        }
        return data

    @classmethod
    def from_dict(cls, data: object) -> DeviceManifest:
        try:
            return _manifest_from(data)
        except (KeyError, TypeError, ValueError) as e:
            raise WorkspaceError(f"device manifest is invalid: {e}") from e

    def save(self, directory: Path) -> None:
        (directory / MANIFEST).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> DeviceManifest:
        path = directory / MANIFEST
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise WorkspaceError(f"{path}: cannot read the device manifest: {e}") from e
        except ValueError as e:
            raise WorkspaceError(f"{path}: not JSON: {e}") from e
        return cls.from_dict(data)


def _manifest_from(data: object) -> DeviceManifest:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    if data.get("format") != DEVICE_FORMAT or data.get("version") != DEVICE_FORMAT_VERSION:
        raise ValueError(f"format must be {DEVICE_FORMAT!r} version {DEVICE_FORMAT_VERSION}")
    known = {"format", "version", "ueid", "product", "oemid", "firmware_version", "key_alg"}
    known |= {"mode", "secure_boot", "layers", "components", "description"}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    layers = tuple(
        LayerFile(
            name=_text(x["name"]),
            file=_text(x["file"]),
            version=_text(x["version"]),
            svn=_int(x["svn"]),
        )
        for x in data["layers"]
    )
    components = tuple(
        ComponentFile(name=_text(c["name"]), file=_text(c["file"]), version=_text(c["version"]))
        for c in data.get("components", [])
    )
    oemid = data.get("oemid")
    secure_boot = data.get("secure_boot", True)
    if not isinstance(secure_boot, bool):
        raise TypeError("secure_boot must be a boolean")
    return DeviceManifest(
        ueid=bytes.fromhex(_text(data["ueid"])),
        product=_text(data["product"]),
        firmware_version=_text(data["firmware_version"]),
        layers=layers,
        components=components,
        oemid=bytes.fromhex(_text(oemid)) if oemid is not None else None,
        key_alg=_text(data.get("key_alg", "p256")),
        mode=_text(data.get("mode", "normal")),
        secure_boot=secure_boot,
    )


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new file readable by its owner only (0600), atomically replaced."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def resolve_inside(directory: Path, relative: str) -> Path:
    """``directory / relative``, refusing paths that leave ``directory``."""
    path = (directory / relative).resolve()
    if not path.is_relative_to(directory.resolve()):
        raise WorkspaceError(f"{relative!r} points outside the device directory")
    return path


def layer_files(directory: Path, manifest: DeviceManifest) -> Sequence[tuple[LayerFile, bytes]]:
    """Read every layer image (boot order)."""
    out: list[tuple[LayerFile, bytes]] = []
    for layer in manifest.layers:
        path = resolve_inside(directory, layer.file)
        try:
            out.append((layer, path.read_bytes()))
        except OSError as e:
            raise WorkspaceError(f"{path}: cannot read layer {layer.name!r}: {e}") from e
    return out
