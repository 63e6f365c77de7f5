"""Test fleet: a manufacturer CA, device directories in the layout of onboarding.device, and the
endorsements that describe them -- built with the real pieces (attest.identity, certs).

The factory proper (onboarding.factory) is someone else's; this writes exactly the layout that
onboarding.device documents, so the simulated device cannot tell the difference.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgetrust.attest.identity import DeviceIdentity
from edgetrust.attest.reference import (
    DigestAlgorithm,
    EndorsementBundle,
    FirmwareReference,
    LayerReference,
    ProductReference,
    ReferenceValues,
)
from edgetrust.certs.builders import build_device_id_certificate
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.certs.loading import certificates_pem
from edgetrust.onboarding.device import (
    ComponentFile,
    DeviceManifest,
    LayerFile,
    write_private,
)

PRODUCT = "edgetrust-sim"
OEMID = bytes.fromhex("0a0b0c")
FIRMWARE_VERSION = "1.0.0"
LAYERS: Mapping[str, bytes] = {
    "bootloader": b"bootloader image v1 " * 64,
    "firmware": b"firmware image v3 " * 256,
    "application": b"classifier app v2 " * 128,
}
SVN: Mapping[str, int] = {"bootloader": 1, "firmware": 3, "application": 2}
COMPONENTS: Mapping[str, bytes] = {"model": b"digits-mnv3 int8 weights " * 512}


@dataclass(frozen=True, slots=True, kw_only=True)
class Product:
    name: str = PRODUCT
    oemid: bytes = OEMID
    firmware_version: str = FIRMWARE_VERSION
    layers: Mapping[str, bytes] = field(default_factory=lambda: dict(LAYERS))
    components: Mapping[str, bytes] = field(default_factory=lambda: dict(COMPONENTS))
    svn: Mapping[str, int] = field(default_factory=lambda: dict(SVN))

    def reference(self) -> ProductReference:
        layers = [
            LayerReference.of_code(n, c, algorithms=(DigestAlgorithm.SHA256,))
            for n, c in self.layers.items()
        ]
        layers += [LayerReference.of_code(n, c, dice=False) for n, c in self.components.items()]
        return ProductReference(
            product=self.name,
            oemid=self.oemid,
            svn_min=dict(self.svn),
            firmware=(FirmwareReference(version=self.firmware_version, layers=tuple(layers)),),
        )


def endorsements(ca: CertificateAuthority, products: Sequence[Product]) -> EndorsementBundle:
    return EndorsementBundle.build(
        anchors=[ca.anchor],
        reference_values=ReferenceValues(products=tuple(p.reference() for p in products)),
    )


def make_device(
    directory: Path,
    ca: CertificateAuthority,
    *,
    product: Product | None = None,
    mode: str = "normal",
    secure_boot: bool = True,
    uds: bytes | None = None,
    now: datetime | None = None,
) -> DeviceManifest:
    """Write one device directory (factory layout) and return its manifest."""
    product = product or Product()
    uds = uds or secrets.token_bytes(32)
    identity = DeviceIdentity.from_uds(uds)
    start = (now or datetime.now(UTC)) - timedelta(days=1)
    device_id = build_device_id_certificate(
        csr=identity.device_id_csr(),
        issuer=ca,
        ueid=identity.ueid,
        not_before=start,
        not_after=start + timedelta(days=3650),
    )
    directory.mkdir(parents=True, mode=0o700)
    write_private(directory / "uds.bin", uds)
    intermediates = [c for c in ca.chain if c != ca.anchor]
    (directory / "device-id.pem").write_bytes(certificates_pem([device_id, *intermediates]))
    (directory / "firmware").mkdir()
    (directory / "components").mkdir()
    for name, code in product.layers.items():
        (directory / "firmware" / f"{name}.bin").write_bytes(code)
    for name, data in product.components.items():
        (directory / "components" / f"{name}.bin").write_bytes(data)
    manifest = DeviceManifest(
        ueid=identity.ueid,
        product=product.name,
        oemid=product.oemid,
        firmware_version=product.firmware_version,
        mode=mode,
        secure_boot=secure_boot,
        layers=tuple(
            LayerFile(name=n, file=f"firmware/{n}.bin", version=product.firmware_version, svn=s)
            for n, s in product.svn.items()
        ),
        components=tuple(
            ComponentFile(name=n, file=f"components/{n}.bin", version="1")
            for n in product.components
        ),
    )
    manifest.save(directory)
    return manifest


def make_fleet(
    root: Path, ca: CertificateAuthority, count: int, *, product: Product | None = None
) -> list[Path]:
    paths = []
    for i in range(count):
        path = root / f"device-{i:04d}"
        make_device(path, ca, product=product)
        paths.append(path)
    return paths


def tamper(directory: Path, layer: str = "firmware") -> None:
    """Flip one byte of a layer image (what an attacker patching flash would do)."""
    path = directory / "firmware" / f"{layer}.bin"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
