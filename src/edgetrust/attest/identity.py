"""The layered DICE device model: UDS -> DeviceID key -> one alias key per boot layer.

Choice of derivation (documented because TCG DICE leaves it open): we follow the Open Profile
for DICE layering exactly (google/open-dice ``docs/specification.md``, "Layering Details"):

* **DeviceID** -- the key pair ``ASYM_KDF(UDS)`` (the spec's ``UDS_Private/UDS_Public``). It
  depends on the UDS only, so it is stable for the life of the device: firmware updates never
  change it, which is what lets the factory certify it once from a CSR. (In TCG's DICE Layering
  Architecture the DeviceID is derived from ``CDI_0`` and so changes with the first mutable
  layer; Open DICE's choice keeps the factory certificate valid across bootloader updates.)
* **Layer n** (1-based, in boot order) -- Open DICE's main flow with the previous CDIs as input
  key material (the UDS itself for layer 1) and this layer's measured inputs::

      CDI_n = derive_cdis(CDI_{n-1}, inputs_n)      alias key n = ASYM_KDF(CDI_Attest_n)

  so the alias key of layer n depends on the UDS and on every layer up to n, and the leaf key
  changes when any layer's code, configuration, authority or mode changes.

A layer's Open DICE inputs are: code = SHA-512 of its image; configuration = the descriptor
:meth:`Layer.config_descriptor` (name, version, SVN and the layer's own configuration bytes, so
an SVN or version bump changes the CDI); authority = SHA-512 of the verified-boot authority
(e.g. the signer's public key), zeros when there is none; the mode; hidden (zeros by default).

Alias certificates (X.509, TCG DICE profile) are issued per layer: layer 1 signed by the DeviceID
key, layer n by the alias key of layer n-1, each carrying a TcbInfo with the layer's vendor,
model (= layer name), version, SVN, layer index, FWIDs (SHA-256 and SHA-384 of the image) and
operational flags derived from the mode.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from edgetrust.attest.dice import (
    HASH_SIZE,
    HIDDEN_SIZE,
    ConfigType,
    DiceKey,
    DiceMode,
    InputValues,
    KeyAlg,
    derive_cdis,
    derive_private_key,
    dice_id,
    hash_input,
    public_key_bytes,
)
from edgetrust.certs.builders import build_alias_certificate
from edgetrust.certs.dice_ext import FWID, OperationalFlag, OperationalFlags, TcbInfo
from edgetrust.errors import DiceInputError

__all__ = [
    "OPEN_DICE_NOT_AFTER",
    "OPEN_DICE_NOT_BEFORE",
    "BootedDevice",
    "DerivedLayer",
    "DeviceIdentity",
    "Layer",
    "LayerMeasurement",
]

_MODE_FLAGS: Final[Mapping[DiceMode, OperationalFlag]] = MappingProxyType(
    {
        DiceMode.NOT_CONFIGURED: OperationalFlag.NOT_CONFIGURED | OperationalFlag.NOT_SECURE,
        DiceMode.NORMAL: OperationalFlag(0),
        DiceMode.DEBUG: OperationalFlag.DEBUG | OperationalFlag.NOT_SECURE,
        DiceMode.RECOVERY: OperationalFlag.RECOVERY,
    }
)
#: The flags an alias certificate vouches for (set or clear): the ones the mode decides.
_MODE_FLAGS_MASK: Final = (
    OperationalFlag.NOT_CONFIGURED
    | OperationalFlag.NOT_SECURE
    | OperationalFlag.RECOVERY
    | OperationalFlag.DEBUG
)

#: Open DICE's fixed CDI certificate validity (``src/template_cert_op.c`` / the X.509 KAT):
#: alias certificates are made at every boot, often before any trusted clock exists, so they do
#: not expire; their freshness comes from the attestation nonce, not from the dates.
OPEN_DICE_NOT_BEFORE: Final = datetime(2018, 3, 22, 23, 59, 59, tzinfo=UTC)
OPEN_DICE_NOT_AFTER: Final = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)

#: FWID digest algorithms of alias certificates, strongest last.
FWID_ALGORITHMS: tuple[str, ...] = ("sha256", "sha384")


def sign_csr(
    builder: x509.CertificateSigningRequestBuilder, key: DiceKey
) -> x509.CertificateSigningRequest:
    """Sign a CSR with a DICE key (Ed25519: no separate hash; P-256: SHA-256)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return builder.sign(key, None)
    return builder.sign(key, hashes.SHA256())


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """One boot layer (bootloader, firmware, application, ...) as the device measures it.

    Give the layer image as ``code`` (preferred: FWIDs are SHA-256/SHA-384 of it) or only its
    64-byte SHA-512 as ``code_hash`` (then the only FWID is that SHA-512).
    """

    name: str
    version: str
    svn: int = 0
    code: bytes | None = field(default=None, repr=False)
    code_hash: bytes | None = None
    #: Security-relevant configuration of this layer (opaque bytes, part of the descriptor).
    config: bytes = b""
    #: The verified-boot authority (e.g. the image signer's public key); None: no authority.
    authority: bytes | None = None
    mode: DiceMode = DiceMode.NORMAL
    hidden: bytes = field(default=bytes(HIDDEN_SIZE), repr=False)
    #: TcbInfo vendor; None: the vendor given to :meth:`DeviceIdentity.derive`.
    vendor: str | None = None
    #: TcbInfo model; None: the layer name.
    model: str | None = None
    #: Digests of the image, computed once at construction (the image may be large).
    _digests: Mapping[str, bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise DiceInputError("layer name must be a non-empty string")
        if not isinstance(self.version, str) or not self.version:
            raise DiceInputError(f"layer {self.name!r}: version must be a non-empty string")
        if isinstance(self.svn, bool) or not isinstance(self.svn, int) or self.svn < 0:
            raise DiceInputError(f"layer {self.name!r}: svn must be an integer >= 0")
        if (self.code is None) == (self.code_hash is None):
            raise DiceInputError(f"layer {self.name!r}: give exactly one of code, code_hash")
        if self.code is not None and not isinstance(self.code, bytes):
            raise DiceInputError(f"layer {self.name!r}: code must be bytes")
        if self.code_hash is not None and (
            not isinstance(self.code_hash, bytes) or len(self.code_hash) != HASH_SIZE
        ):
            raise DiceInputError(f"layer {self.name!r}: code_hash must be 64 bytes (SHA-512)")
        if not isinstance(self.config, bytes):
            raise DiceInputError(f"layer {self.name!r}: config must be bytes")
        if self.authority is not None and not isinstance(self.authority, bytes):
            raise DiceInputError(f"layer {self.name!r}: authority must be bytes")
        try:
            object.__setattr__(self, "mode", DiceMode(self.mode))
        except ValueError as e:
            raise DiceInputError(f"layer {self.name!r}: mode must be 0..3") from e
        if not isinstance(self.hidden, bytes) or len(self.hidden) != HIDDEN_SIZE:
            raise DiceInputError(f"layer {self.name!r}: hidden must be 64 bytes")
        object.__setattr__(self, "_digests", self._measure())

    def _measure(self) -> Mapping[str, bytes]:
        if self.code is None:
            return MappingProxyType({"sha512": self.code_hash or b""})
        return MappingProxyType(
            {
                "sha256": hashlib.sha256(self.code).digest(),
                "sha384": hashlib.sha384(self.code).digest(),
                "sha512": hash_input(self.code),
            }
        )

    @property
    def measured_code_hash(self) -> bytes:
        """The Open DICE code input: SHA-512 of the image (or the given ``code_hash``)."""
        return self._digests["sha512"]

    @property
    def digests(self) -> Mapping[str, bytes]:
        """Digests of the layer image by algorithm name (``sha256``, ``sha384``, ``sha512``)."""
        return self._digests

    @property
    def fwids(self) -> tuple[tuple[str, bytes], ...]:
        """The TcbInfo FWIDs: SHA-256 and SHA-384 of the image, or the SHA-512 code hash."""
        digests = self.digests
        if self.code is None:
            return (("sha512", digests["sha512"]),)
        return tuple((alg, digests[alg]) for alg in FWID_ALGORITHMS)

    def config_descriptor(self) -> bytes:
        """The Open DICE configuration descriptor of this layer (its SHA-512 enters the CDI).

        Canonical JSON (sorted keys, no spaces, UTF-8) of name, version, SVN and the hex of
        ``config``: an SVN or version change therefore changes the layer's CDI and keys.
        """
        document = {
            "config": self.config.hex(),
            "name": self.name,
            "svn": self.svn,
            "version": self.version,
        }
        return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()

    def input_values(self) -> InputValues:
        """This layer's Open DICE input values."""
        authority = bytes(HASH_SIZE) if self.authority is None else hash_input(self.authority)
        return InputValues(
            code_hash=self.measured_code_hash,
            config_type=ConfigType.DESCRIPTOR,
            config_descriptor=self.config_descriptor(),
            authority_hash=authority,
            mode=self.mode,
            hidden=self.hidden,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerMeasurement:
    """What a verifier may learn about a booted layer (no secrets): for TcbInfo and EAT claims."""

    #: 1-based position in the boot order (the DeviceID / UDS is layer 0).
    index: int
    name: str
    vendor: str | None
    model: str
    version: str
    svn: int
    mode: DiceMode
    code_hash: bytes
    digests: Mapping[str, bytes]
    fwids: tuple[tuple[str, bytes], ...]
    config_descriptor: bytes
    authority_hash: bytes
    #: Public key (raw Ed25519 / uncompressed SEC1 P-256) and Open DICE ID of the alias key.
    alias_public_key: bytes
    alias_id: bytes

    @property
    def debug(self) -> bool:
        return self.mode is DiceMode.DEBUG

    @property
    def not_configured(self) -> bool:
        return self.mode is DiceMode.NOT_CONFIGURED

    @property
    def recovery(self) -> bool:
        return self.mode is DiceMode.RECOVERY

    @property
    def operational_flags(self) -> OperationalFlags:
        """TcbInfo flags from the Open DICE mode (normal: none set).

        not-configured -> notConfigured + notSecure; debug -> debug + notSecure (Open DICE:
        "not in a secure state"); recovery -> recovery.
        """
        return OperationalFlags(value=_MODE_FLAGS[self.mode])

    def tcb_info(self) -> TcbInfo:
        """The tcg-dice-TcbInfo describing this layer in its alias certificate."""
        return TcbInfo(
            vendor=self.vendor,
            model=self.model,
            version=self.version,
            svn=self.svn,
            layer=self.index,
            index=0,
            fwids=tuple(FWID.of(digest, alg) for alg, digest in self.fwids),
            flags=self.operational_flags,
            flags_mask=OperationalFlags(value=_MODE_FLAGS_MASK),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class DerivedLayer:
    """A layer after its DICE transition: the measurement plus the secrets that layer holds."""

    measurement: LayerMeasurement
    alias_key: DiceKey = field(repr=False)
    cdi_attest: bytes = field(repr=False)
    cdi_seal: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceIdentity:
    """A device's DICE root: the UDS (secret) and the stable DeviceID key derived from it."""

    uds: bytes = field(repr=False)
    key_alg: KeyAlg
    device_id_key: DiceKey = field(repr=False)

    @classmethod
    def from_uds(cls, uds: bytes, *, key_alg: KeyAlg = KeyAlg.P256) -> DeviceIdentity:
        """The identity of the device holding ``uds`` (32 or 64 bytes of full entropy)."""
        if not isinstance(uds, bytes):
            raise DiceInputError(f"UDS must be bytes, not {type(uds).__name__}")
        if len(uds) not in (32, 64):
            raise DiceInputError(f"UDS must be 32 or 64 bytes, got {len(uds)}")
        try:
            alg = KeyAlg(key_alg)
        except ValueError as e:
            raise DiceInputError(f"unsupported key algorithm {key_alg!r} (ed25519, p256)") from e
        return cls(uds=uds, key_alg=alg, device_id_key=derive_private_key(uds, alg))

    @property
    def device_id_public_key(self) -> bytes:
        """The DeviceID public key (raw Ed25519 or uncompressed SEC1 P-256)."""
        return public_key_bytes(self.device_id_key)

    @property
    def device_id(self) -> bytes:
        """Open DICE's UDS_ID: the 20-byte ID of the DeviceID public key."""
        return dice_id(self.device_id_key)

    @property
    def ueid(self) -> bytes:
        """A stable UEID (RFC 9711 section 4.2.1, type 0x01 RAND): 0x01 ‖ SHA-256(DeviceID key).

        The DeviceID key is derived from the full-entropy UDS, so its hash is as unique as a
        random UEID, and it lets anyone holding the DeviceID certificate recompute the UEID.
        """
        return b"\x01" + hashlib.sha256(self.device_id_public_key).digest()

    def device_id_name(self) -> x509.Name:
        """The DeviceID subject name ``SERIALNUMBER=<hex UDS_ID>`` (Open DICE UDS certificates)."""
        return x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, self.device_id.hex())])

    def device_id_csr(self, *, subject: x509.Name | None = None) -> x509.CertificateSigningRequest:
        """A CSR for the DeviceID key, signed by it (proof of possession for the factory CA)."""
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            subject if subject is not None else self.device_id_name()
        )
        return sign_csr(builder, self.device_id_key)

    def derive(
        self, layers: Sequence[Layer], *, vendor: str | None = None
    ) -> tuple[DerivedLayer, ...]:
        """Run the DICE transition of every layer in boot order (no certificates)."""
        if not layers:
            raise DiceInputError("a device boots at least one layer")
        for index, layer in enumerate(layers, start=1):
            if not isinstance(layer, Layer):
                raise DiceInputError(f"layer {index} is not a Layer: {type(layer).__name__}")
        names = [layer.name for layer in layers]
        if len(set(names)) != len(names):
            raise DiceInputError(f"layer names must be unique, got {names}")
        cdi_attest, cdi_seal = self.uds, self.uds
        derived: list[DerivedLayer] = []
        for index, layer in enumerate(layers, start=1):
            inputs = layer.input_values()
            cdi_attest, cdi_seal = derive_cdis(cdi_attest, cdi_seal, inputs)
            alias_key = derive_private_key(cdi_attest, self.key_alg)
            measurement = LayerMeasurement(
                index=index,
                name=layer.name,
                vendor=layer.vendor if layer.vendor is not None else vendor,
                model=layer.model if layer.model is not None else layer.name,
                version=layer.version,
                svn=layer.svn,
                mode=layer.mode,
                code_hash=inputs.code_hash,
                digests=layer.digests,
                fwids=layer.fwids,
                config_descriptor=inputs.config_descriptor or b"",
                authority_hash=inputs.authority_hash,
                alias_public_key=public_key_bytes(alias_key),
                alias_id=dice_id(alias_key),
            )
            derived.append(
                DerivedLayer(
                    measurement=measurement,
                    alias_key=alias_key,
                    cdi_attest=cdi_attest,
                    cdi_seal=cdi_seal,
                )
            )
        return tuple(derived)

    def boot(
        self,
        layers: Sequence[Layer],
        device_id_cert: x509.Certificate,
        *,
        vendor: str | None = None,
        intermediates: Sequence[x509.Certificate] = (),
        leaf_is_ca: bool = False,
        not_before: datetime = OPEN_DICE_NOT_BEFORE,
        not_after: datetime = OPEN_DICE_NOT_AFTER,
    ) -> BootedDevice:
        """Boot ``layers`` in order and issue an alias certificate for each.

        Layer 1's certificate is signed by the DeviceID key under ``device_id_cert``'s subject,
        layer n's by layer n-1's alias key. Each carries a critical TcbInfo
        (:meth:`LayerMeasurement.tcb_info`), the subject key's Open DICE ID as serial number,
        and pathLen constraints exactly as deep as the layers below it. The last alias
        certificate is an end entity (digitalSignature: it signs evidence) unless
        ``leaf_is_ca``. ``intermediates`` (the manufacturer intermediate, if any) are appended
        to :attr:`BootedDevice.chain` after the DeviceID certificate.
        """
        if not isinstance(device_id_cert, x509.Certificate):
            raise DiceInputError("device_id_cert must be an x509.Certificate")
        try:
            certified = public_key_bytes(device_id_cert.public_key())  # type: ignore[arg-type]
        except (DiceInputError, ValueError, UnsupportedAlgorithm) as e:
            raise DiceInputError("device_id_cert does not carry an Ed25519 or P-256 key") from e
        if certified != self.device_id_public_key:
            raise DiceInputError("device_id_cert certifies another key, not this DeviceID key")
        if not all(isinstance(c, x509.Certificate) for c in intermediates):
            raise DiceInputError("intermediates must be x509.Certificate objects")
        derived = self.derive(layers, vendor=vendor)
        issuer_key: DiceKey = self.device_id_key
        issuer_name = device_id_cert.subject
        issuer_key_id = _subject_key_id(device_id_cert)
        certificates: list[x509.Certificate] = []
        for position, layer in enumerate(derived):
            below = len(derived) - position - 1  # alias certificates issued under this one
            is_ca = below > 0 or leaf_is_ca
            certificate = build_alias_certificate(
                subject_key=layer.alias_key,
                issuer_key=issuer_key,
                issuer_name=issuer_name,
                tcb_info=layer.measurement.tcb_info(),
                is_ca=is_ca,
                path_length=(below if leaf_is_ca else below - 1) if is_ca else None,
                not_before=not_before,
                not_after=not_after,
                serial=layer.measurement.alias_id,
                issuer_key_id=issuer_key_id,
            )
            certificates.append(certificate)
            issuer_key = layer.alias_key
            issuer_name = certificate.subject
            issuer_key_id = _subject_key_id(certificate)
        return BootedDevice(
            device_id_key=self.device_id_key,
            device_id_certificate=device_id_cert,
            intermediates=tuple(intermediates),
            derived=derived,
            alias_certificates=tuple(certificates),
        )


def _subject_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BootedDevice:
    """A device after boot: every layer's measurement, alias key and alias certificate."""

    device_id_key: DiceKey = field(repr=False)
    device_id_certificate: x509.Certificate
    intermediates: tuple[x509.Certificate, ...] = ()
    derived: tuple[DerivedLayer, ...] = field(repr=False)
    #: Alias certificates in boot order (layer 1 first).
    alias_certificates: tuple[x509.Certificate, ...]

    @property
    def layers(self) -> tuple[LayerMeasurement, ...]:
        """The measurements of the booted layers, in boot order (for EAT measurements)."""
        return tuple(d.measurement for d in self.derived)

    @property
    def leaf_key(self) -> DiceKey:
        """The last layer's alias private key: it signs the device's evidence."""
        return self.derived[-1].alias_key

    @property
    def leaf_certificate(self) -> x509.Certificate:
        return self.alias_certificates[-1]

    @property
    def sealing_cdi(self) -> bytes:
        """The last layer's sealing CDI (stable across code updates of the same authority)."""
        return self.derived[-1].cdi_seal

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        """Leaf first: alias certificates (last layer first), DeviceID, intermediates."""
        return (
            *reversed(self.alias_certificates),
            self.device_id_certificate,
            *self.intermediates,
        )
