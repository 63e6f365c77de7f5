"""Every refusal over the wire: the exact gRPC status and message, and nothing stored.

"Nothing stored" means: no device, no certificate, no audit entry, no revocation. A refused
attestation uses up its nonce (single use); a malformed one does not even do that -- the same
session still onboards afterwards, which shows the request never reached the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust._proto.edgetrust.v1 import verifier_pb2
from edgetrust.attest import cbor, cose, eat
from edgetrust.attest.ear import verify_ear
from edgetrust.attest.schemes import DEVICE_EAT_MEDIA_TYPE
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.onboarding.device import SimulatedDevice
from edgetrust.onboarding.verifier import EAR_METADATA_KEY
from tests.integration.onboarding.conftest import RunningVerifier, import_bundle
from tests.integration.onboarding.fleet import Product, endorsements, tamper

DER = serialization.Encoding.DER


@dataclass
class Attempt:
    """One Attest request built the way a device builds it, open to tampering by the test."""

    device: SimulatedDevice
    session_id: str
    nonce: bytes
    chain_der: list[bytes]
    evidence: bytes
    csr_der: bytes
    media_type: str = DEVICE_EAT_MEDIA_TYPE

    def request(self, **changes: Any) -> Any:
        fields: dict[str, Any] = {
            "session_id": self.session_id,
            "chain_der": self.chain_der,
            "evidence": self.evidence,
            "media_type": self.media_type,
            "csr_der": self.csr_der,
        }
        fields.update(changes)
        return verifier_pb2.AttestRequest(**fields)


def prepare(
    verifier: RunningVerifier,
    device: SimulatedDevice,
    *,
    signing_key: Any = None,
    csr_key: ec.EllipticCurvePrivateKey | None = None,
    nonce: bytes | None = None,
    session_id: str | None = None,
) -> Attempt:
    stub = verifier.stub()
    grant = stub.Challenge(verifier_pb2.ChallengeRequest(device_hint="test"), timeout=5)
    boot = device.boot()
    tls_key = ec.generate_private_key(ec.SECP256R1())
    claims = device.claims(boot, nonce=nonce or grant.nonce, tls_key=tls_key, now=verifier.clock())
    evidence = eat.make_eat(claims, signing_key or boot.leaf_key)
    return Attempt(
        device=device,
        session_id=session_id or grant.session_id,
        nonce=grant.nonce,
        chain_der=list(boot.chain_der),
        evidence=evidence,
        csr_der=device.csr(csr_key or tls_key).public_bytes(DER),
    )


def attest(verifier: RunningVerifier, request: Any) -> Any:
    return verifier.stub().Attest(request, timeout=10)


def refused(verifier: RunningVerifier, request: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        attest(verifier, request)
    error = info.value
    assert isinstance(error, grpc.RpcError)
    return error


def assert_denied(verifier: RunningVerifier, request: Any, message: str) -> None:
    """PERMISSION_DENIED with exactly ``message`` and a signed contraindicated EAR in trailers."""
    before = verifier.registry_state()
    error = refused(verifier, request)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == message
    trailers = {m.key: m.value for m in error.trailing_metadata() or ()}
    ear = verify_ear(trailers[EAR_METADATA_KEY], verifier.keys.ear_key.public_key())
    assert ear.status.label == "contraindicated"
    assert ", ".join(ear.reasons) == message.removeprefix("refused: ").replace("; ", ", ")
    assert verifier.registry_state() == before


def assert_malformed(
    verifier: RunningVerifier, attempt: Attempt, request: Any, code: grpc.StatusCode, message: str
) -> None:
    """The status and message; then the untouched session still onboards (nothing stored)."""
    before = verifier.registry_state()
    error = refused(verifier, request)
    assert error.code() is code
    assert error.details() == message
    assert verifier.registry_state() == before
    assert attest(verifier, attempt.request()).tier == "affirming"


# ---- nonces -----------------------------------------------------------------------------------


def test_replayed_nonce(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device())
    assert attest(verifier, attempt.request()).tier == "affirming"
    assert_denied(verifier, attempt.request(), "refused: nonce_replayed")


def test_expired_nonce(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device())
    verifier.clock.advance(timedelta(seconds=61))  # the nonce TTL is 60 s
    assert_denied(verifier, attempt.request(), "refused: nonce_expired")


def test_nonce_from_another_session(verifier: RunningVerifier, new_device: Any) -> None:
    device = new_device()
    other = prepare(verifier, device)  # a session whose nonce we will not use
    attempt = prepare(verifier, device, session_id=other.session_id)  # our nonce, their session
    assert_denied(verifier, attempt.request(), "refused: nonce_session_mismatch")


def test_unknown_nonce(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device(), nonce=b"\x42" * 32)
    assert_denied(verifier, attempt.request(), "refused: nonce_unknown")


# ---- the evidence -----------------------------------------------------------------------------


def test_chain_to_unknown_root(
    verifier: RunningVerifier, new_device: Any, stranger: CertificateAuthority
) -> None:
    attempt = prepare(verifier, new_device(ca=stranger))
    assert_denied(verifier, attempt.request(), "refused: chain_untrusted")


def test_eat_signed_by_a_key_other_than_the_leaf(
    verifier: RunningVerifier, new_device: Any
) -> None:
    attempt = prepare(verifier, new_device(), signing_key=ec.generate_private_key(ec.SECP256R1()))
    assert_denied(verifier, attempt.request(), "refused: signature_invalid")


def test_csr_key_is_not_the_cnf_key(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device(), csr_key=ec.generate_private_key(ec.SECP256R1()))
    assert_denied(verifier, attempt.request(), "refused: csr_key_mismatch")
    # The nonce is used up by the refusal.
    assert_denied(verifier, attempt.request(), "refused: csr_key_mismatch; nonce_replayed")


def test_debug_mode_device(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device(mode="debug"))
    # Debug mode sets the debug and notSecure TcbInfo flags and dbgstat=enabled.
    assert_denied(verifier, attempt.request(), "refused: debug_enabled; secure_boot_disabled")


def test_measurement_not_in_reference_values(verifier: RunningVerifier, new_device: Any) -> None:
    device = new_device()
    tamper(device.directory, "application")
    attempt = prepare(verifier, device)
    assert_denied(
        verifier,
        attempt.request(),
        "refused: measurement_mismatch:application; fwid_mismatch:application",
    )


def test_model_component_not_in_reference_values(
    verifier: RunningVerifier, new_device: Any
) -> None:
    device = new_device()
    model = device.directory / "components" / "model.bin"
    model.write_bytes(model.read_bytes() + b"backdoor")
    attempt = prepare(verifier, device)
    assert_denied(verifier, attempt.request(), "refused: measurement_mismatch:model")


def test_unknown_product(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device(product=Product(name="other-cam")))
    assert_denied(verifier, attempt.request(), "refused: unknown_product")


def test_revoked_device(verifier: RunningVerifier, new_device: Any) -> None:
    from datetime import UTC, datetime

    device = new_device()
    assert attest(verifier, prepare(verifier, device).request()).tier == "affirming"
    verifier.store.revoke_device(device.ueid, reason="test", actor="test", now=datetime.now(UTC))
    assert_denied(verifier, prepare(verifier, device).request(), "refused: device_revoked")


# ---- malformed and oversized requests ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"session_id": ""}, "session_id is missing"),
        ({"chain_der": []}, "chain_der is missing"),
        ({"evidence": b""}, "evidence is missing"),
        ({"csr_der": b""}, "csr_der is missing"),
        ({"media_type": ""}, "media_type is missing"),
        ({"chain_der": [b"\x30\x03\x02\x01\x01"]}, "chain_der[0] is not a DER X.509 certificate"),
        ({"csr_der": b"not a csr"}, "csr_der is not a DER PKCS#10 certificate request"),
    ],
    ids=["no-session", "no-chain", "no-evidence", "no-csr", "no-media-type", "bad-cert", "bad-csr"],
)
def test_malformed_request(
    verifier: RunningVerifier, new_device: Any, change: dict[str, Any], message: str
) -> None:
    attempt = prepare(verifier, new_device())
    assert_malformed(
        verifier, attempt, attempt.request(**change), grpc.StatusCode.INVALID_ARGUMENT, message
    )


def test_evidence_that_is_not_an_eat(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device())
    error = refused(verifier, attempt.request(evidence=b"\xa1\x01\x02"))  # a CBOR map
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("evidence is not a decodable EAT")
    assert attest(verifier, attempt.request()).tier == "affirming"


def test_unsupported_media_type(verifier: RunningVerifier, new_device: Any) -> None:
    attempt = prepare(verifier, new_device())
    assert_malformed(
        verifier,
        attempt,
        attempt.request(media_type="application/psa-attestation-token"),
        grpc.StatusCode.INVALID_ARGUMENT,
        f"onboarding takes {DEVICE_EAT_MEDIA_TYPE}, not 'application/psa-attestation-token' (psa)",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"evidence": b"\x00" * 16385}, "evidence is 16385 bytes, over the limit of 16384"),
        ({"csr_der": b"\x00" * 4097}, "csr_der is 4097 bytes, over the limit of 4096"),
        ({"session_id": "s" * 129}, "session_id is 129 bytes, over the limit of 128"),
        ({"media_type": "m" * 257}, "media_type is 257 bytes, over the limit of 256"),
        ({"chain_der": [b"\x00" * 8193]}, "chain_der[0] is 8193 bytes, over the limit of 8192"),
        ({"chain_der": [b"\x00"] * 9}, "chain_der has 9 certificates, over the limit of 8"),
    ],
    ids=["evidence", "csr", "session", "media-type", "certificate", "chain-length"],
)
def test_oversized_field(
    verifier: RunningVerifier, new_device: Any, change: dict[str, Any], message: str
) -> None:
    attempt = prepare(verifier, new_device())
    assert_malformed(
        verifier, attempt, attempt.request(**change), grpc.StatusCode.RESOURCE_EXHAUSTED, message
    )


def test_oversized_message_is_refused_by_the_transport(
    verifier: RunningVerifier, new_device: Any
) -> None:
    attempt = prepare(verifier, new_device())
    before = verifier.registry_state()
    error = refused(verifier, attempt.request(evidence=b"\x00" * (300 * 1024)))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (error.details() or "")
    assert verifier.registry_state() == before
    assert attest(verifier, attempt.request()).tier == "affirming"


def test_oversized_device_hint(verifier: RunningVerifier) -> None:
    with pytest.raises(grpc.RpcError) as info:
        verifier.stub().Challenge(verifier_pb2.ChallengeRequest(device_hint="h" * 257), timeout=5)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert info.value.details() == "device_hint is 257 bytes, over the limit of 256"  # type: ignore[attr-defined]


def test_refused_device_can_still_see_why(verifier: RunningVerifier, new_device: Any) -> None:
    """The device-side client turns PERMISSION_DENIED into a result with the reasons and EAR."""
    device = new_device(secure_boot=False)
    result = device.onboard(verifier.client())
    assert not result.affirmed
    assert result.reasons == ("secure_boot_disabled",)
    assert verify_ear(result.ear, verifier.keys.ear_key.public_key()).reasons == (
        "secure_boot_disabled",
    )


def test_trust_anchors_are_scoped_to_their_product(
    verifier: RunningVerifier, new_device: Any, stranger: CertificateAuthority
) -> None:
    """Another manufacturer endorsed for ITS product cannot onboard devices as ours."""
    import_bundle(verifier.store, endorsements(stranger, [Product(name="other-cam")]))
    verifier.server_core_refresh()
    own = prepare(verifier, new_device(ca=stranger, product=Product(name="other-cam")))
    assert attest(verifier, own.request()).tier == "affirming"
    impostor = prepare(verifier, new_device(ca=stranger))  # claims edgetrust-sim
    assert_denied(verifier, impostor.request(), "refused: chain_untrusted")


def test_signed_evidence_with_ill_typed_claims_is_a_signed_refusal(
    verifier: RunningVerifier, new_device: Any
) -> None:
    """Structurally sound, properly signed, but a claim of the wrong type: a negative appraisal
    (PERMISSION_DENIED + EAR), not a malformed request."""
    device = new_device()
    attempt = prepare(verifier, device)
    boot = device.boot()
    payload = cbor.dumps({10: "not bytes", 259: device.manifest.hwmodel})
    evidence = cose.sign1(payload, boot.leaf_key, tagged=True)
    assert_denied(verifier, attempt.request(evidence=evidence), "refused: token_malformed")
