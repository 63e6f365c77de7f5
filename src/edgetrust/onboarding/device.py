"""A simulated device: its DICE boot, its evidence, and its onboarding against a verifier.

:class:`SimulatedDevice` brings a device directory to life (the layout and the manifest are in
:mod:`edgetrust.onboarding.device_directory`, whose names this module re-exports): every boot
measures the firmware layers through DICE (:mod:`edgetrust.attest.identity`), the leaf alias key
signs the EAT, and the device onboards (or renews) through
:class:`~edgetrust.onboarding.verifier_client.VerifierClient`, storing the operational key,
certificate and EAR under ``operational/``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

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
from edgetrust.onboarding.device_directory import (
    COMPONENTS_DIR,
    DEVICE_FORMAT,
    DEVICE_FORMAT_VERSION,
    DEVICE_ID_FILE,
    FIRMWARE_DIR,
    MANIFEST,
    OPERATIONAL_CERT,
    OPERATIONAL_DIR,
    OPERATIONAL_EAR,
    OPERATIONAL_KEY,
    UDS_FILE,
    UDS_SIZE,
    ComponentFile,
    DeviceManifest,
    LayerFile,
    layer_files,
    resolve_inside,
    write_private,
)
from edgetrust.onboarding.verifier_client import (
    ChallengeGrant,
    OnboardingResult,
    VerifierClient,
)

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
    "BootState",
    "ChallengeGrant",
    "ComponentFile",
    "DeviceManifest",
    "LayerFile",
    "OnboardingResult",
    "SimulatedDevice",
    "VerifierClient",
    "layer_files",
    "resolve_inside",
    "write_private",
]

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
