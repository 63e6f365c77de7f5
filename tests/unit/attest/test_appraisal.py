"""appraise(): one test per rejection reason (reason code + contraindicated tier), and the pass.

The device is built with the real pieces: a manufacturer CA (certs.ca), a DICE identity from a
UDS and its boot with alias certificates (attest.identity), the DeviceID certificate
(certs.builders) and an EAT signed by the leaf alias key (attest.eat).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetrust.attest import cbor, cose, eat
from edgetrust.attest.appraisal import AppraisalPolicy, appraise
from edgetrust.attest.dice import DiceMode
from edgetrust.attest.ear import (
    Tier,
    TrustVector,
    sign_ear,
    verify_ear,
)
from edgetrust.attest.identity import DerivedLayer, DeviceIdentity, Layer
from edgetrust.attest.reference import (
    DebugPolicy,
    DigestAlgorithm,
    FirmwareReference,
    LayerReference,
    ProductReference,
    ReferenceValues,
)
from edgetrust.certs.builders import build_device_id_certificate
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.errors import (
    AlgorithmError,
    AppraisalError,
    ClaimError,
    ConfigError,
    EvidenceError,
    FreshnessError,
    NonceError,
    SignatureError,
    UntrustedAnchorError,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
NONCE = bytes(range(32))
PRODUCT = "edgetrust-sim"
OEMID = bytes.fromhex("a1b2c3")
CODE = {"bootloader": b"bootloader image v1", "firmware": b"firmware image v3"}
MODEL = b"model bytes"
ALGS = (DigestAlgorithm.SHA256, DigestAlgorithm.SHA384)


@dataclasses.dataclass
class Device:
    ca: CertificateAuthority
    identity: DeviceIdentity
    layers: tuple[DerivedLayer, ...]
    chain: list[x509.Certificate]
    tls_key: ec.EllipticCurvePrivateKey

    @property
    def leaf_key(self) -> Any:
        return self.layers[-1].alias_key


def boot(
    ca: CertificateAuthority,
    *,
    uds: bytes = b"\x11" * 32,
    code: dict[str, bytes] | None = None,
    svn: dict[str, int] | None = None,
    modes: dict[str, DiceMode] | None = None,
) -> Device:
    code = code or CODE
    svn = svn or {"bootloader": 2, "firmware": 5}
    modes = modes or {}
    identity = DeviceIdentity.from_uds(uds)
    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365)
    device_id = build_device_id_certificate(
        csr=identity.device_id_csr(),
        issuer=ca,
        ueid=identity.ueid,
        not_before=start,
        not_after=end,
    )
    booted = identity.boot(
        [
            Layer(
                name=name,
                version="1.0",
                svn=svn[name],
                code=code[name],
                mode=modes.get(name, DiceMode.NORMAL),
            )
            for name in ("bootloader", "firmware")
        ],
        device_id,
        vendor="edgetrust",
    )
    return Device(
        ca=ca,
        identity=identity,
        layers=booted.derived,
        chain=list(booted.chain),
        tls_key=ec.generate_private_key(ec.SECP256R1()),
    )


def references(
    *, svn_min: dict[str, int] | None = None, debug: DebugPolicy = DebugPolicy.FORBIDDEN
) -> ReferenceValues:
    layers = tuple(LayerReference.of_code(n, c, algorithms=ALGS) for n, c in CODE.items())
    model = LayerReference.of_code("model", MODEL, dice=False)
    return ReferenceValues(
        products=(
            ProductReference(
                product=PRODUCT,
                oemid=OEMID,
                svn_min=svn_min if svn_min is not None else {"bootloader": 1, "firmware": 4},
                firmware=(
                    FirmwareReference(version="3.0.0", layers=(*layers, model), debug=debug),
                ),
            ),
        )
    )


def claims_for(device: Device, **changes: Any) -> eat.EatClaims:
    measurements = [
        eat.Measurement(
            name=d.measurement.name,
            digest_alg="sha-256",
            digest=d.measurement.digests["sha256"],
            version=d.measurement.version,
            svn=d.measurement.svn,
            layer=d.measurement.index,
        )
        for d in device.layers
    ]
    measurements.append(
        eat.Measurement(name="model", digest_alg="sha-256", digest=hashlib.sha256(MODEL).digest())
    )
    fields: dict[str, Any] = {
        "eat_profile": eat.DEVICE_PROFILE,
        "nonce": NONCE,
        "ueid": device.identity.ueid,
        "iat": int(NOW.timestamp()) - 5,
        "oemid": OEMID,
        "hwmodel": PRODUCT.encode(),
        "swname": "edgetrust-sim-firmware",
        "swversion": eat.Version(version="3.0.0"),
        "dbgstat": eat.DebugStatus.DISABLED_PERMANENTLY,
        "oemboot": True,
        "cnf_key": device.tls_key.public_key(),
        "measurements": tuple(measurements),
    }
    fields.update(changes)
    return eat.EatClaims(**fields)


def token_for(device: Device, key: Any = None, **changes: Any) -> bytes:
    return eat.make_eat(claims_for(device, **changes), key or device.leaf_key)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(now=NOW - dt.timedelta(days=30))


@pytest.fixture(scope="module")
def device(ca: CertificateAuthority) -> Device:
    return boot(ca)


def run(
    device: Device,
    token: bytes,
    *,
    refs: ReferenceValues | None = None,
    anchors: Sequence[Any] | None = None,
    nonce: bytes = NONCE,
    now: dt.datetime = NOW,
    chain: Sequence[Any] | None = None,
) -> Any:
    return appraise(
        chain_certs=chain if chain is not None else device.chain,
        token=token,
        anchors=anchors if anchors is not None else [device.ca.anchor],
        reference_values=refs or references(),
        expected_nonce=nonce,
        now=now,
        policy=AppraisalPolicy(),
    )


def refused(result: Any, reason: str, error: type[EvidenceError]) -> None:
    assert reason in result.reasons, result.reasons
    assert result.status is Tier.CONTRAINDICATED
    assert not result.affirming
    assert isinstance(result.error, error), result.error


# ---- the pass ---------------------------------------------------------------------------------


def test_genuine_device_is_affirming(device: Device) -> None:
    result = run(device, token_for(device))
    assert result.reasons == ()
    assert result.status is Tier.AFFIRMING
    assert result.affirming
    assert result.trust_vector == TrustVector(
        instance_identity=2, configuration=2, executables=2, hardware=2
    )
    assert result.ueid == device.identity.ueid
    assert result.product == PRODUCT
    assert result.device.firmware_version == "3.0.0"
    assert result.device_key == device.tls_key.public_key()
    assert result.nonce == NONCE
    assert result.issued_at == NOW
    assert result.error is None


def test_chain_given_as_der_in_any_order(device: Device) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    der = [c.public_bytes(Encoding.DER) for c in reversed(device.chain)]
    assert run(device, token_for(device), chain=der).affirming


def test_result_signs_as_ear(device: Device) -> None:
    result = run(device, token_for(device), now=NOW + dt.timedelta(microseconds=250))
    assert result.issued_at == NOW
    key = ec.generate_private_key(ec.SECP256R1())
    verified = verify_ear(sign_ear(result, key), key.public_key(), now=NOW)
    assert verified == result
    assert verified.device_key == device.tls_key.public_key()


# ---- one test per rejection reason ------------------------------------------------------------


def test_wrong_key(device: Device) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    refused(run(device, token_for(device, key=other)), "signature_invalid", SignatureError)


def test_token_signed_by_device_id_not_leaf(device: Device) -> None:
    token = token_for(device, key=device.identity.device_id_key)
    refused(run(device, token), "signature_invalid", SignatureError)


def test_altered_payload(device: Device) -> None:
    message = cose.decode_sign1(token_for(device), require_tag=True)
    forged = eat.encode_claims(claims_for(device, swversion=eat.Version(version="9.9.9")))
    token = cbor.dumps(
        cbor.Tag(18, [message.protected_bytes, message.unprotected, forged, message.signature])
    )
    result = run(device, token)
    refused(result, "signature_invalid", SignatureError)
    assert result.trust_vector.instance_identity == 99


def test_altered_protected_header(device: Device) -> None:
    message = cose.decode_sign1(token_for(device), require_tag=True)
    protected = cbor.dumps({1: -7, 4: b"kid"})
    token = cbor.dumps(
        cbor.Tag(18, [protected, message.unprotected, message.payload, message.signature])
    )
    refused(run(device, token), "signature_invalid", SignatureError)


def test_garbage_token(device: Device) -> None:
    refused(run(device, b"\xa0not a token"), "token_malformed", EvidenceError)


def test_mac0_token(device: Device) -> None:
    token = eat.make_eat(claims_for(device), cose.SymmetricKey(secret=b"k" * 32))
    refused(run(device, token), "token_not_signed", AlgorithmError)


def test_missing_nonce(device: Device) -> None:
    refused(run(device, token_for(device, nonce=None)), "nonce_missing", NonceError)


def test_wrong_nonce(device: Device) -> None:
    result = run(device, token_for(device, nonce=b"\xee" * 32))
    refused(result, "nonce_mismatch", NonceError)
    assert result.trust_vector.instance_identity == -97


def test_stale_nonce_replayed_token(device: Device) -> None:
    # A token from an earlier session: its nonce is no longer the one we expect, and it is old.
    old = token_for(device, nonce=b"\x01" * 32, iat=int(NOW.timestamp()) - 3600)
    result = run(device, old, nonce=b"\x02" * 32)
    refused(result, "nonce_mismatch", NonceError)
    assert "token_too_old" in result.reasons


def test_expired(device: Device) -> None:
    token = token_for(device, exp=int(NOW.timestamp()) - 60)
    refused(run(device, token), "token_expired", FreshnessError)


def test_from_the_future(device: Device) -> None:
    token = token_for(device, iat=int(NOW.timestamp()) + 3600)
    refused(run(device, token), "token_from_future", FreshnessError)


def test_measurement_mismatch(ca: CertificateAuthority) -> None:
    evil = boot(ca, code={**CODE, "firmware": b"patched firmware"})
    result = run(evil, token_for(evil))
    refused(result, "measurement_mismatch:firmware", AppraisalError)
    assert "fwid_mismatch:firmware" in result.reasons
    assert result.trust_vector.executables == 96


def test_measurement_mismatch_in_token_only(device: Device) -> None:
    claims = claims_for(device)
    measurements = tuple(
        dataclasses.replace(m, digest=b"\x00" * 32) if m.name == "model" else m
        for m in claims.device_measurements
    )
    token = token_for(device, measurements=measurements)
    result = run(device, token)
    refused(result, "measurement_mismatch:model", AppraisalError)
    assert result.reasons == ("measurement_mismatch:model",)


def test_measurement_missing(device: Device) -> None:
    claims = claims_for(device)
    measurements = tuple(m for m in claims.device_measurements if m.name != "model")
    refused(
        run(device, token_for(device, measurements=measurements)),
        "measurement_missing:model",
        AppraisalError,
    )


def test_svn_below_minimum(device: Device) -> None:
    result = run(device, token_for(device), refs=references(svn_min={"bootloader": 3}))
    refused(result, "svn_below_minimum:bootloader", AppraisalError)
    assert result.reasons == ("svn_below_minimum:bootloader",)


def test_svn_lowest_report_counts(device: Device) -> None:
    # The token claims a higher SVN than the alias certificate's TcbInfo: the lower one counts.
    claims = claims_for(device)
    measurements = tuple(
        dataclasses.replace(m, svn=9) if m.name == "firmware" else m
        for m in claims.device_measurements
    )
    result = run(
        device,
        token_for(device, measurements=measurements),
        refs=references(svn_min={"firmware": 6}),
    )
    refused(result, "svn_below_minimum:firmware", AppraisalError)


def test_debug_enabled_where_forbidden(device: Device) -> None:
    result = run(device, token_for(device, dbgstat=eat.DebugStatus.ENABLED))
    refused(result, "debug_enabled", AppraisalError)
    assert result.trust_vector.configuration == 96


def test_debug_mode_layer_where_forbidden(ca: CertificateAuthority) -> None:
    debug = boot(ca, modes={"firmware": DiceMode.DEBUG})
    result = run(debug, token_for(debug))
    refused(result, "debug_enabled", AppraisalError)
    assert "secure_boot_disabled" in result.reasons  # Open DICE debug mode is "not secure"


def test_debug_allowed_by_reference(device: Device) -> None:
    token = token_for(device, dbgstat=eat.DebugStatus.ENABLED)
    assert run(device, token, refs=references(debug=DebugPolicy.ALLOWED)).affirming


def test_secure_boot_off(device: Device) -> None:
    refused(run(device, token_for(device, oemboot=False)), "secure_boot_disabled", AppraisalError)


def test_recovery_mode_layer(ca: CertificateAuthority) -> None:
    recovering = boot(ca, modes={"bootloader": DiceMode.RECOVERY})
    refused(run(recovering, token_for(recovering)), "tcb_recovery:bootloader", AppraisalError)


def test_unknown_product(device: Device) -> None:
    result = run(device, token_for(device, hwmodel=b"another-gadget"))
    refused(result, "unknown_product", AppraisalError)
    assert result.trust_vector.hardware == 97


def test_oemid_mismatch(device: Device) -> None:
    refused(run(device, token_for(device, oemid=b"\x00\x00\x01")), "oemid_mismatch", AppraisalError)


def test_unknown_firmware_version(device: Device) -> None:
    token = token_for(device, swversion=eat.Version(version="2.0.0"))
    refused(run(device, token), "unknown_firmware_version", AppraisalError)


def test_chain_to_unknown_root(device: Device) -> None:
    stranger = CertificateAuthority.create(subject="CN=stranger", now=NOW - dt.timedelta(days=30))
    result = run(device, token_for(device), anchors=[stranger.anchor])
    refused(result, "chain_untrusted", UntrustedAnchorError)
    assert result.trust_vector.instance_identity == 97


def test_chain_to_impostor_root_with_the_same_name(device: Device) -> None:
    impostor = CertificateAuthority.create(now=NOW - dt.timedelta(days=30))
    assert impostor.anchor.subject == device.ca.anchor.subject
    result = run(device, token_for(device), anchors=[impostor.anchor])
    refused(result, "chain_invalid", SignatureError)


def test_chain_expired(device: Device) -> None:
    later = NOW + dt.timedelta(days=400)
    token = token_for(device, iat=int(later.timestamp()))
    refused(run(device, token, now=later), "chain_expired", EvidenceError)


def test_chain_malformed(device: Device) -> None:
    refused(
        run(device, token_for(device), chain=[b"\x30\x03junk"]), "chain_malformed", EvidenceError
    )


def test_ueid_mismatch(device: Device) -> None:
    result = run(device, token_for(device, ueid=b"\x01" + b"\x99" * 32))
    refused(result, "ueid_mismatch", AppraisalError)
    assert result.trust_vector.instance_identity == 96


def test_profile_mismatch(device: Device) -> None:
    refused(run(device, token_for(device, eat_profile="tag:other")), "profile_mismatch", ClaimError)


def test_cnf_missing(device: Device) -> None:
    result = run(device, token_for(device, cnf_key=None))
    refused(result, "claim_missing:cnf", ClaimError)
    assert result.device_key is None


def test_unrecognized_measurement_is_a_warning(device: Device) -> None:
    claims = claims_for(device)
    extra = eat.Measurement(name="plugin", digest_alg="sha-256", digest=b"\x05" * 32)
    result = run(device, token_for(device, measurements=(*claims.device_measurements, extra)))
    assert result.reasons == ("measurement_unrecognized:plugin",)
    assert result.status is Tier.WARNING
    assert not result.affirming
    assert result.trust_vector.executables == 33


def test_several_reasons_reported_together(device: Device) -> None:
    token = token_for(device, nonce=b"\xee" * 32, dbgstat=eat.DebugStatus.ENABLED)
    result = run(device, token, refs=references(svn_min={"firmware": 9}))
    assert set(result.reasons) == {"nonce_mismatch", "svn_below_minimum:firmware", "debug_enabled"}
    assert isinstance(result.error, NonceError)


def test_naive_now_is_a_programmer_error(device: Device) -> None:
    with pytest.raises(ConfigError):
        run(device, token_for(device), now=NOW.replace(tzinfo=None))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_tokens_never_raise_nor_pass(device: Device, data: st.DataObject) -> None:
    token = bytearray(token_for(device))
    position = data.draw(st.integers(0, len(token) - 1))
    token[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(1, len(token)))
    result = run(device, bytes(token[:cut]))
    assert result.status is Tier.CONTRAINDICATED
