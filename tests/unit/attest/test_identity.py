"""The layered DICE device model: stability of the DeviceID, sensitivity of the alias keys."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.attest.dice import (
    ConfigType,
    DiceMode,
    InputValues,
    KeyAlg,
    derive_cdis,
    derive_private_key,
    dice_id,
    public_key_bytes,
)
from edgetrust.attest.identity import (
    OPEN_DICE_NOT_AFTER,
    OPEN_DICE_NOT_BEFORE,
    BootedDevice,
    DeviceIdentity,
    Layer,
)
from edgetrust.certs.builders import build_device_id_certificate
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.certs.chain import validate_chain
from edgetrust.certs.dice_ext import TCB_INFO_OID, TcbInfo
from edgetrust.errors import DiceInputError

UDS = bytes(range(32))
OTHER_UDS = bytes(range(1, 33))


def _layers(**changes: dict[str, Any]) -> list[Layer]:
    """bootloader / firmware / application; ``changes`` maps a layer name to field overrides."""
    base = [
        Layer(name="bootloader", version="1.0.0", svn=1, code=b"bootloader image v1"),
        Layer(
            name="firmware",
            version="2.3.1",
            svn=4,
            code=b"firmware image" * 100,
            config=b"secure-boot=on",
            authority=b"vendor signing key",
        ),
        Layer(name="application", version="0.9", svn=0, code=b"classifier app"),
    ]
    return [dataclasses.replace(layer, **changes.get(layer.name, {})) for layer in base]


def _leaf_public(identity: DeviceIdentity, layers: list[Layer]) -> bytes:
    return identity.derive(layers)[-1].measurement.alias_public_key


@pytest.fixture(scope="module")
def identity() -> DeviceIdentity:
    return DeviceIdentity.from_uds(UDS)


def test_device_id_key_is_open_dice_uds_key(identity: DeviceIdentity) -> None:
    assert identity.key_alg is KeyAlg.P256
    expected = derive_private_key(UDS, KeyAlg.P256)
    assert identity.device_id_public_key == public_key_bytes(expected)
    assert identity.device_id == dice_id(expected)
    assert isinstance(identity.device_id_key, ec.EllipticCurvePrivateKey)


def test_device_id_is_stable_and_per_uds(identity: DeviceIdentity) -> None:
    again = DeviceIdentity.from_uds(UDS)
    assert again.device_id_public_key == identity.device_id_public_key
    assert DeviceIdentity.from_uds(OTHER_UDS).device_id_public_key != again.device_id_public_key


def test_ueid_is_rand_type_over_the_device_id_key(identity: DeviceIdentity) -> None:
    assert identity.ueid[0] == 0x01
    assert identity.ueid[1:] == hashlib.sha256(identity.device_id_public_key).digest()


def test_layer_derivation_follows_open_dice_layering(identity: DeviceIdentity) -> None:
    layers = _layers()
    derived = identity.derive(layers)
    cdi_a, cdi_s = UDS, UDS
    for layer, out in zip(layers, derived, strict=True):
        inputs = InputValues(
            code_hash=hashlib.sha512(layer.code or b"").digest(),
            config_type=ConfigType.DESCRIPTOR,
            config_descriptor=layer.config_descriptor(),
            authority_hash=bytes(64)
            if layer.authority is None
            else hashlib.sha512(layer.authority).digest(),
            mode=layer.mode,
            hidden=bytes(64),
        )
        cdi_a, cdi_s = derive_cdis(cdi_a, cdi_s, inputs)
        assert (out.cdi_attest, out.cdi_seal) == (cdi_a, cdi_s)
        assert public_key_bytes(out.alias_key) == out.measurement.alias_public_key
        assert out.measurement.alias_public_key == public_key_bytes(
            derive_private_key(cdi_a, KeyAlg.P256)
        )
        assert out.measurement.alias_id == dice_id(out.alias_key)
    assert [d.measurement.index for d in derived] == [1, 2, 3]


def test_measurements_carry_digests_fwids_and_names(identity: DeviceIdentity) -> None:
    derived = identity.derive(_layers(), vendor="Acme")
    firmware = derived[1].measurement
    image = b"firmware image" * 100
    assert firmware.name == firmware.model == "firmware"
    assert firmware.vendor == "Acme"
    assert (firmware.version, firmware.svn) == ("2.3.1", 4)
    assert firmware.digests == {
        "sha256": hashlib.sha256(image).digest(),
        "sha384": hashlib.sha384(image).digest(),
        "sha512": hashlib.sha512(image).digest(),
    }
    assert firmware.fwids == (
        ("sha256", hashlib.sha256(image).digest()),
        ("sha384", hashlib.sha384(image).digest()),
    )
    assert firmware.authority_hash == hashlib.sha512(b"vendor signing key").digest()
    assert b'"svn":4' in firmware.config_descriptor


def test_code_hash_only_layer_reports_sha512_fwid(identity: DeviceIdentity) -> None:
    code_hash = hashlib.sha512(b"opaque image").digest()
    layer = Layer(name="rom-ext", version="1", code_hash=code_hash)
    measurement = identity.derive([layer])[0].measurement
    assert measurement.fwids == (("sha512", code_hash),)
    assert measurement.code_hash == code_hash
    # Same CDI as when the image itself is given.
    image_layer = Layer(name="rom-ext", version="1", code=b"opaque image")
    assert identity.derive([image_layer])[0].measurement.alias_public_key == (
        measurement.alias_public_key
    )


@pytest.mark.parametrize(
    ("layer", "change"),
    [
        ("bootloader", {"code": b"bootloader image v2"}),
        ("firmware", {"code": b"patched firmware"}),
        ("application", {"code": b"other app"}),
        ("bootloader", {"config": b"uart=on"}),
        ("firmware", {"config": b"secure-boot=off"}),
        ("firmware", {"svn": 5}),
        ("application", {"version": "1.0"}),
        ("firmware", {"authority": b"another signer"}),
        ("bootloader", {"mode": DiceMode.DEBUG}),
        ("application", {"mode": DiceMode.RECOVERY}),
        ("firmware", {"hidden": b"\x01" * 64}),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v),
)
def test_leaf_key_changes_when_any_layer_changes(
    identity: DeviceIdentity, layer: str, change: dict[str, Any]
) -> None:
    before = identity.derive(_layers())
    after = identity.derive(_layers(**{layer: change}))
    assert after[-1].measurement.alias_public_key != before[-1].measurement.alias_public_key
    # Layers before the changed one keep their keys; the DeviceID key is not involved at all.
    position = [m.measurement.name for m in before].index(layer)
    for b, a in zip(before[:position], after[:position], strict=True):
        assert a.measurement.alias_public_key == b.measurement.alias_public_key
    assert DeviceIdentity.from_uds(UDS).device_id_public_key == identity.device_id_public_key


def test_sealing_cdi_survives_a_code_update(identity: DeviceIdentity) -> None:
    before = identity.derive(_layers())
    after = identity.derive(_layers(application={"code": b"app v2"}))
    assert after[-1].cdi_seal == before[-1].cdi_seal
    assert after[-1].cdi_attest != before[-1].cdi_attest


def test_leaf_key_depends_on_the_uds(identity: DeviceIdentity) -> None:
    other = DeviceIdentity.from_uds(OTHER_UDS)
    assert _leaf_public(other, _layers()) != _leaf_public(identity, _layers())


def test_64_byte_uds_and_ed25519() -> None:
    identity = DeviceIdentity.from_uds(bytes(range(64)), key_alg=KeyAlg.ED25519)
    assert isinstance(identity.device_id_key, ed25519.Ed25519PrivateKey)
    derived = identity.derive(_layers())
    assert isinstance(derived[-1].alias_key, ed25519.Ed25519PrivateKey)
    assert len(derived[-1].measurement.alias_public_key) == 32


def test_mode_flags(identity: DeviceIdentity) -> None:
    derived = identity.derive(
        _layers(
            bootloader={"mode": DiceMode.NOT_CONFIGURED},
            firmware={"mode": DiceMode.RECOVERY},
            application={"mode": DiceMode.DEBUG},
        )
    )
    boot, firm, app = (d.measurement for d in derived)
    assert (boot.not_configured, boot.debug, boot.recovery) == (True, False, False)
    assert (firm.not_configured, firm.debug, firm.recovery) == (False, False, True)
    assert (app.not_configured, app.debug, app.recovery) == (False, True, False)


def test_secrets_stay_out_of_repr(identity: DeviceIdentity) -> None:
    derived = identity.derive(_layers())[0]
    assert UDS.hex() not in repr(identity)
    assert repr(UDS) not in repr(identity)
    assert repr(derived.cdi_attest) not in repr(derived)
    assert "image" not in repr(_layers()[0])


# ---------------------------------------------------------------------------------------------
# Rejections
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 16, 31, 33, 48, 65])
def test_rejects_uds_of_wrong_size(size: int) -> None:
    with pytest.raises(DiceInputError, match=f"UDS must be 32 or 64 bytes, got {size}"):
        DeviceIdentity.from_uds(bytes(size))


def test_rejects_uds_that_is_not_bytes() -> None:
    with pytest.raises(DiceInputError, match="UDS must be bytes, not str"):
        DeviceIdentity.from_uds("00" * 32)  # type: ignore[arg-type]


def test_rejects_unknown_key_algorithm() -> None:
    with pytest.raises(DiceInputError, match="unsupported key algorithm"):
        DeviceIdentity.from_uds(UDS, key_alg="rsa")  # type: ignore[arg-type]


def test_rejects_empty_boot(identity: DeviceIdentity) -> None:
    with pytest.raises(DiceInputError, match="at least one layer"):
        identity.derive([])


def test_rejects_duplicate_layer_names(identity: DeviceIdentity) -> None:
    layer = Layer(name="fw", version="1", code=b"x")
    with pytest.raises(DiceInputError, match="layer names must be unique"):
        identity.derive([layer, layer])


def test_rejects_non_layer(identity: DeviceIdentity) -> None:
    with pytest.raises(DiceInputError, match="layer 1 is not a Layer"):
        identity.derive(["bootloader"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": ""}, "layer name must be a non-empty string"),
        ({"version": ""}, "version must be a non-empty string"),
        ({"svn": -1}, "svn must be an integer >= 0"),
        ({"svn": True}, "svn must be an integer >= 0"),
        ({"code": None}, "give exactly one of code, code_hash"),
        ({"code_hash": bytes(64)}, "give exactly one of code, code_hash"),
        ({"code": None, "code_hash": bytes(32)}, "code_hash must be 64 bytes"),
        ({"code": "image"}, "code must be bytes"),
        ({"config": "cfg"}, "config must be bytes"),
        ({"authority": "key"}, "authority must be bytes"),
        ({"mode": 9}, "mode must be 0..3"),
        ({"hidden": bytes(32)}, "hidden must be 64 bytes"),
    ],
    ids=[
        "empty-name",
        "empty-version",
        "negative-svn",
        "bool-svn",
        "no-code",
        "code-and-hash",
        "short-code-hash",
        "code-not-bytes",
        "config-not-bytes",
        "authority-not-bytes",
        "bad-mode",
        "short-hidden",
    ],
)
def test_rejects_malformed_layer(fields: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"name": "fw", "version": "1", "code": b"image"}
    values.update(fields)
    with pytest.raises(DiceInputError, match=message.replace(".", r"\.")):
        Layer(**values)


@pytest.mark.parametrize("alg", list(KeyAlg))
def test_device_id_csr_is_signed_by_the_device_id_key(alg: KeyAlg) -> None:
    identity = DeviceIdentity.from_uds(UDS, key_alg=alg)
    csr = identity.device_id_csr()
    assert csr.is_signature_valid
    assert public_key_bytes(csr.public_key()) == identity.device_id_public_key  # type: ignore[arg-type]
    assert csr.subject.rfc4514_string() == f"2.5.4.5={identity.device_id.hex()}"


def test_tcb_info_of_a_layer(identity: DeviceIdentity) -> None:
    derived = identity.derive(_layers(firmware={"mode": DiceMode.DEBUG}), vendor="Acme")
    tcb = derived[1].measurement.tcb_info()
    image = b"firmware image" * 100
    assert (tcb.vendor, tcb.model, tcb.version, tcb.svn, tcb.layer) == (
        "Acme",
        "firmware",
        "2.3.1",
        4,
        2,
    )
    assert tcb.fwids is not None
    assert [(f.hash_name, f.digest) for f in tcb.fwids] == [
        ("sha256", hashlib.sha256(image).digest()),
        ("sha384", hashlib.sha384(image).digest()),
    ]
    assert tcb.flags is not None
    assert tcb.flags.debug
    assert tcb.flags.not_secure
    assert not tcb.flags.recovery
    assert TcbInfo.from_der(tcb.to_der()) == tcb
    normal = derived[0].measurement.tcb_info()
    assert normal.flags is not None
    assert normal.flags.names() == ()
    assert normal.flags_mask is not None
    assert set(normal.flags_mask.names()) == {"notConfigured", "notSecure", "recovery", "debug"}


# ---------------------------------------------------------------------------------------------
# Boot: alias certificates and the chain
# ---------------------------------------------------------------------------------------------

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def manufacturer() -> CertificateAuthority:
    return CertificateAuthority.create(intermediate=True, now=NOW - timedelta(days=1))


def _device_id_cert(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> x509.Certificate:
    return build_device_id_certificate(
        csr=identity.device_id_csr(),
        issuer=manufacturer,
        ueid=identity.ueid,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=3650),
    )


def _boot(
    identity: DeviceIdentity,
    manufacturer: CertificateAuthority,
    layers: list[Layer] | None = None,
    **kwargs: Any,
) -> BootedDevice:
    assert manufacturer.intermediate is not None
    return identity.boot(
        layers if layers is not None else _layers(),
        _device_id_cert(identity, manufacturer),
        vendor="Acme",
        intermediates=(manufacturer.intermediate.certificate,),
        **kwargs,
    )


@pytest.mark.parametrize("alg", list(KeyAlg))
def test_booted_chain_validates_with_tcb_info(
    alg: KeyAlg, manufacturer: CertificateAuthority
) -> None:
    identity = DeviceIdentity.from_uds(UDS, key_alg=alg)
    booted = _boot(identity, manufacturer)
    # root -> intermediate -> DeviceID -> bootloader -> firmware -> application
    assert len(booted.chain) == 5
    result = validate_chain(booted.chain, [manufacturer.anchor], NOW)
    assert result.validator == ("cryptography" if alg is KeyAlg.P256 else "edgetrust")
    assert result.leaf == booted.leaf_certificate
    assert [e.certificate for e in result.entries] == list(booted.chain)
    tcbs = [entry.tcb_info[0] for entry in result.entries[:3]]
    assert [t.model for t in tcbs] == ["application", "firmware", "bootloader"]
    assert [t.layer for t in tcbs] == [3, 2, 1]
    for tcb, measurement in zip(reversed(tcbs), booted.layers, strict=True):
        assert tcb == measurement.tcb_info()
    assert result.ueid is not None
    assert result.ueid.value == identity.ueid


def test_alias_certificates_carry_the_derived_keys_and_ids(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    booted = _boot(identity, manufacturer)
    for certificate, measurement in zip(booted.alias_certificates, booted.layers, strict=True):
        assert public_key_bytes(certificate.public_key()) == measurement.alias_public_key  # type: ignore[arg-type]
        assert certificate.serial_number == int.from_bytes(measurement.alias_id, "big")
        extension = certificate.extensions.get_extension_for_oid(TCB_INFO_OID)
        assert extension.critical
    assert public_key_bytes(booted.leaf_key) == booted.layers[-1].alias_public_key
    assert booted.device_id_key is identity.device_id_key
    leaf_constraints = booted.leaf_certificate.extensions.get_extension_for_class(
        x509.BasicConstraints
    ).value
    assert not leaf_constraints.ca
    first = booted.alias_certificates[0].extensions.get_extension_for_class(x509.BasicConstraints)
    assert (first.value.ca, first.value.path_length) == (True, 1)
    # Open DICE validity: alias certificates need no clock.
    assert booted.leaf_certificate.not_valid_before_utc == OPEN_DICE_NOT_BEFORE
    assert booted.leaf_certificate.not_valid_after_utc == OPEN_DICE_NOT_AFTER


def test_leaf_signs_evidence(identity: DeviceIdentity, manufacturer: CertificateAuthority) -> None:
    booted = _boot(identity, manufacturer)
    key = booted.leaf_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(b"evidence", ec.ECDSA(hashes.SHA256()))
    public = booted.leaf_certificate.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, b"evidence", ec.ECDSA(hashes.SHA256()))


def test_ca_leaf_variant_validates(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    booted = _boot(identity, manufacturer, leaf_is_ca=True)
    constraints = booted.leaf_certificate.extensions.get_extension_for_class(
        x509.BasicConstraints
    ).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    validate_chain(booted.chain, [manufacturer.anchor], NOW)


def test_debug_layer_is_flagged_in_its_certificate(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    booted = _boot(identity, manufacturer, _layers(firmware={"mode": DiceMode.DEBUG}))
    result = validate_chain(booted.chain, [manufacturer.anchor], NOW)
    application, firmware, bootloader = (e.tcb_info[0] for e in result.entries[:3])
    assert firmware.flags is not None
    assert firmware.flags.debug
    assert bootloader.flags is not None
    assert not bootloader.flags.debug
    assert application.flags is not None
    assert not application.flags.debug


def test_firmware_update_keeps_the_device_id_certificate(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    device_cert = _device_id_cert(identity, manufacturer)
    before = identity.boot(_layers(), device_cert)
    after = identity.boot(_layers(firmware={"code": b"firmware v2", "svn": 5}), device_cert)
    assert public_key_bytes(after.leaf_key) != public_key_bytes(before.leaf_key)
    assert after.layers[0].alias_public_key == before.layers[0].alias_public_key
    assert manufacturer.intermediate is not None
    anchors = [manufacturer.anchor]
    extra = [manufacturer.intermediate.certificate]
    validate_chain([*after.chain, *extra], anchors, NOW)
    validate_chain([*before.chain, *extra], anchors, NOW)


def test_boot_rejects_a_device_id_cert_of_another_device(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    other = DeviceIdentity.from_uds(OTHER_UDS)
    with pytest.raises(DiceInputError, match="certifies another key"):
        identity.boot(_layers(), _device_id_cert(other, manufacturer))


def test_boot_rejects_a_non_certificate(identity: DeviceIdentity) -> None:
    with pytest.raises(DiceInputError, match=r"must be an x509\.Certificate"):
        identity.boot(_layers(), b"not a cert")  # type: ignore[arg-type]


def test_booted_device_repr_hides_keys(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    booted = _boot(identity, manufacturer)
    assert "derived" not in repr(booted)
    assert "device_id_key" not in repr(booted)


def test_boot_rejects_intermediates_that_are_not_certificates(
    identity: DeviceIdentity, manufacturer: CertificateAuthority
) -> None:
    with pytest.raises(DiceInputError, match="intermediates must be"):
        identity.boot(
            _layers(),
            _device_id_cert(identity, manufacturer),
            intermediates=[b"pem"],  # type: ignore[list-item]
        )
