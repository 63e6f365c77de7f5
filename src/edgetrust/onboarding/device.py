"""A simulated device: its directory, its DICE boot, and its onboarding against a verifier.

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

import hashlib
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgetrust.attest import eat
from edgetrust.attest.dice import DiceKey, DiceMode, KeyAlg
from edgetrust.attest.identity import DeviceIdentity, Layer
from edgetrust.attest.schemes import DEVICE_EAT_MEDIA_TYPE as DEVICE_MEDIA_TYPE
from edgetrust.certs.loading import certificates_pem, private_key_pem, read_certificates
from edgetrust.errors import (
    WorkspaceError,
)
from edgetrust.onboarding.verifier_client import (
    ChallengeGrant,
    OnboardingResult,
    VerifierClient,
)

__all__ = [
    "DEVICE_FORMAT",
    "BootState",
    "ChallengeGrant",
    "ComponentFile",
    "DeviceManifest",
    "LayerFile",
    "OnboardingResult",
    "SimulatedDevice",
    "VerifierClient",
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


# ------------------------------------------------------------------------------------------------
# The simulated device
# ------------------------------------------------------------------------------------------------

_MODE_BY_NAME: Final = {
    "not_configured": DiceMode.NOT_CONFIGURED,
    "normal": DiceMode.NORMAL,
    "debug": DiceMode.DEBUG,
    "recovery": DiceMode.RECOVERY,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class BootState:
    """What one boot produced: the leaf (last alias) key, the chain, the measurements."""

    ueid: bytes
    leaf_key: DiceKey = field(repr=False)
    #: Leaf first: the alias certificates (last layer first), the DeviceID, its intermediates.
    chain: tuple[x509.Certificate, ...]
    measurements: tuple[eat.Measurement, ...]

    #: ``chain`` in DER, encoded once per boot (every onboarding sends it).
    _chain_der: tuple[bytes, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        der = tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)
        object.__setattr__(self, "_chain_der", der)

    @property
    def chain_der(self) -> tuple[bytes, ...]:
        return self._chain_der


class SimulatedDevice:
    """A device directory brought to life: boots through DICE, attests, onboards, renews."""

    def __init__(
        self,
        directory: Path,
        *,
        manifest: DeviceManifest,
        uds: bytes,
        device_id_chain: tuple[x509.Certificate, ...],
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self._uds = uds
        self.device_id_chain = device_id_chain
        self._identity = DeviceIdentity.from_uds(uds, key_alg=KeyAlg(manifest.key_alg))

    @classmethod
    def open(cls, directory: str | os.PathLike[str]) -> SimulatedDevice:
        """Read a device directory written by the factory (see the module documentation)."""
        root = Path(directory)
        if not root.is_dir():
            raise WorkspaceError(f"{root}: no such device directory")
        manifest = DeviceManifest.load(root)
        uds_path = root / UDS_FILE
        try:
            mode = uds_path.stat().st_mode
            uds = uds_path.read_bytes()
        except OSError as e:
            raise WorkspaceError(f"{uds_path}: cannot read the UDS: {e.strerror or e}") from e
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WorkspaceError(
                f"{uds_path}: the UDS is readable by group or others (mode "
                f"{stat.S_IMODE(mode):04o})",
                hint=f"chmod 600 {uds_path}",
            )
        if len(uds) != UDS_SIZE:
            raise WorkspaceError(f"{uds_path}: a UDS is {UDS_SIZE} bytes, found {len(uds)}")
        chain = tuple(read_certificates(root / DEVICE_ID_FILE))
        device = cls(root, manifest=manifest, uds=uds, device_id_chain=chain)
        if device.ueid != manifest.ueid:
            raise WorkspaceError(
                f"{root}: the UDS derives UEID {device.ueid.hex()}, the manifest says "
                f"{manifest.ueid.hex()}"
            )
        return device

    @property
    def ueid(self) -> bytes:
        return self._identity.ueid

    # -- boot -----------------------------------------------------------------------------------

    def boot(self) -> BootState:
        """Measure every layer image now and run the DICE chain (a changed image, a changed key)."""
        mode = _MODE_BY_NAME[self.manifest.mode]
        layers = [
            Layer(name=f.name, version=f.version, svn=f.svn, code=code, mode=mode)
            for f, code in layer_files(self.directory, self.manifest)
        ]
        device_id, *intermediates = self.device_id_chain
        booted = self._identity.boot(layers, device_id, intermediates=intermediates)
        measurements = [
            eat.Measurement(
                name=d.measurement.name,
                digest_alg="sha-256",
                digest=d.measurement.digests["sha256"],
                version=d.measurement.version,
                svn=d.measurement.svn,
                layer=d.measurement.index,
            )
            for d in booted.derived
        ]
        for component in self.manifest.components:
            path = resolve_inside(self.directory, component.file)
            try:
                data = path.read_bytes()
            except OSError as e:
                raise WorkspaceError(f"{path}: cannot read {component.name!r}: {e}") from e
            measurements.append(
                eat.Measurement(
                    name=component.name,
                    digest_alg="sha-256",
                    digest=hashlib.sha256(data).digest(),
                    version=component.version,
                )
            )
        return BootState(
            ueid=self.ueid,
            leaf_key=booted.leaf_key,
            chain=booted.chain,
            measurements=tuple(measurements),
        )

    # -- evidence -------------------------------------------------------------------------------

    def claims(
        self, boot: BootState, *, nonce: bytes, tls_key: ec.EllipticCurvePrivateKey, now: datetime
    ) -> eat.EatClaims:
        """The EAT claims of our device profile for one attestation."""
        debug = self.manifest.mode == "debug"
        return eat.EatClaims(
            eat_profile=eat.DEVICE_PROFILE,
            nonce=nonce,
            ueid=boot.ueid,
            iat=int(now.timestamp()),
            oemid=self.manifest.oemid,
            hwmodel=self.manifest.hwmodel,
            swname=self.manifest.product,
            swversion=eat.Version(version=self.manifest.firmware_version),
            dbgstat=eat.DebugStatus.ENABLED if debug else eat.DebugStatus.DISABLED_PERMANENTLY,
            oemboot=self.manifest.secure_boot,
            cnf_key=tls_key.public_key(),
            measurements=boot.measurements,
        )

    def evidence(
        self, boot: BootState, *, nonce: bytes, tls_key: ec.EllipticCurvePrivateKey, now: datetime
    ) -> bytes:
        """The EAT, signed by the leaf alias key."""
        return eat.make_eat(self.claims(boot, nonce=nonce, tls_key=tls_key, now=now), boot.leaf_key)

    def csr(self, tls_key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
        """A CSR for the operational TLS key (the verifier chooses the subject)."""
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.ueid.hex()[:64])])
        return (
            x509.CertificateSigningRequestBuilder()
            .subject_name(name)
            .sign(tls_key, hashes.SHA256())
        )

    # -- onboarding -----------------------------------------------------------------------------

    def onboard(
        self,
        client: VerifierClient,
        *,
        boot: BootState | None = None,
        now: Callable[[], datetime] | None = None,
        store: bool = True,
    ) -> OnboardingResult:
        """Challenge, attest, and (affirmed) store the operational certificate and key."""
        clock = now or _utcnow
        state = boot or self.boot()
        tls_key = ec.generate_private_key(ec.SECP256R1())
        grant = client.challenge(device_hint=self.ueid.hex())
        token = self.evidence(state, nonce=grant.nonce, tls_key=tls_key, now=clock())
        result = client.attest(
            session_id=grant.session_id,
            chain_der=state.chain_der,
            evidence=token,
            media_type=DEVICE_MEDIA_TYPE,
            csr_der=self.csr(tls_key).public_bytes(serialization.Encoding.DER),
        )
        if result.affirmed and store:
            self.store_operational(result, tls_key)
        return result

    def renew_if_needed(
        self,
        client: VerifierClient,
        *,
        now: datetime,
        margin: float = 1 / 3,
        boot: BootState | None = None,
    ) -> OnboardingResult | None:
        """Attest again when less than ``margin`` of the certificate's lifetime is left."""
        if not self.needs_renewal(now, margin=margin):
            return None
        return self.onboard(client, boot=boot)

    # -- operational state ----------------------------------------------------------------------

    @property
    def operational_dir(self) -> Path:
        return self.directory / OPERATIONAL_DIR

    def operational_certificate(self) -> x509.Certificate | None:
        path = self.operational_dir / OPERATIONAL_CERT
        if not path.exists():
            return None
        return read_certificates(path)[0]

    def needs_renewal(self, now: datetime, *, margin: float = 1 / 3) -> bool:
        cert = self.operational_certificate()
        if cert is None:
            return True
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        return now >= end - (end - start) * margin

    def store_operational(self, result: OnboardingResult, key: ec.EllipticCurvePrivateKey) -> Path:
        """Write key (0600), certificate chain and EAR; replaces the previous set atomically."""
        if result.certificate is None:
            raise WorkspaceError("nothing to store: the onboarding was refused")
        staging = self.directory / (OPERATIONAL_DIR + ".new")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        write_private(staging / OPERATIONAL_KEY, private_key_pem(key))
        (staging / OPERATIONAL_CERT).write_bytes(
            certificates_pem([result.certificate, *result.chain])
        )
        (staging / OPERATIONAL_EAR).write_bytes(result.ear)
        old = self.directory / (OPERATIONAL_DIR + ".old")
        if self.operational_dir.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(self.operational_dir, old)
        os.replace(staging, self.operational_dir)
        if old.exists():
            shutil.rmtree(old)
        return self.operational_dir


def _utcnow() -> datetime:
    return datetime.now(UTC)
