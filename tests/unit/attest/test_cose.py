"""COSE_Sign1 / COSE_Mac0: round trips, one named test per rejection, and mutation properties."""

from __future__ import annotations

import contextlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.attest import cbor, cose
from edgetrust.attest.cose import Algorithm, SymmetricKey
from edgetrust.errors import (
    AlgorithmError,
    CBORError,
    EvidenceError,
    KeyFileError,
    MalformedError,
    SignatureError,
)

P256 = ec.derive_private_key(0x1234567890ABCDEF, ec.SECP256R1())
P256_OTHER = ec.derive_private_key(0xFEDCBA0987654321, ec.SECP256R1())
P384 = ec.derive_private_key(0x1122334455667788, ec.SECP384R1())
P521 = ec.derive_private_key(0x99887766554433, ec.SECP521R1())
ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ED448 = ed448.Ed448PrivateKey.from_private_bytes(bytes(range(57)))
HMAC_KEY = SymmetricKey(secret=bytes(range(32)))
PAYLOAD = b"edgetrust payload"


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "alg"),
    [
        (P256, Algorithm.ES256),
        (P384, Algorithm.ES384),
        (P521, Algorithm.ES512),
        (ED25519, Algorithm.EdDSA),
        (ED448, Algorithm.EdDSA),
    ],
    ids=["ES256", "ES384", "ES512", "Ed25519", "Ed448"],
)
@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
def test_sign1_round_trip(key: cose.PrivateKey, alg: Algorithm, tagged: bool) -> None:
    token = cose.sign1(PAYLOAD, key, kid=b"k1", tagged=tagged)
    msg = cose.verify_sign1(token, key.public_key())
    assert msg.payload == PAYLOAD
    assert msg.alg is alg
    assert msg.kid == b"k1"
    assert msg.tagged is tagged
    assert cbor.loads(msg.protected_bytes) == {1: int(alg)}


def test_ecdsa_signatures_are_raw_r_s_and_deterministic() -> None:
    first = cose.decode_sign1(cose.sign1(PAYLOAD, P384))
    second = cose.decode_sign1(cose.sign1(PAYLOAD, P384))
    assert len(first.signature) == 96
    assert first.signature == second.signature


@pytest.mark.parametrize(
    ("alg", "size"),
    [
        (Algorithm.HMAC_256_64, 8),
        (Algorithm.HMAC_256_256, 32),
        (Algorithm.HMAC_384_384, 48),
        (Algorithm.HMAC_512_512, 64),
    ],
)
@pytest.mark.parametrize("tagged", [True, False], ids=["tagged", "untagged"])
def test_mac0_round_trip(alg: Algorithm, size: int, tagged: bool) -> None:
    token = cose.mac0(PAYLOAD, HMAC_KEY, alg=alg, tagged=tagged)
    msg = cose.verify_mac0(token, HMAC_KEY)
    assert msg.payload == PAYLOAD
    assert len(msg.tag) == size
    assert msg.alg is alg


def test_external_aad_is_bound() -> None:
    token = cose.sign1(PAYLOAD, P256, external_aad=b"context")
    cose.verify_sign1(token, P256.public_key(), external_aad=b"context")
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, P256.public_key())
    mac = cose.mac0(PAYLOAD, HMAC_KEY, external_aad=b"context")
    cose.verify_mac0(mac, HMAC_KEY, external_aad=b"context")
    with pytest.raises(SignatureError):
        cose.verify_mac0(mac, HMAC_KEY, external_aad=b"other")


def test_private_key_is_accepted_for_verification() -> None:
    cose.verify_sign1(cose.sign1(PAYLOAD, ED25519), ED25519)


def test_detached_payload() -> None:
    token = cose.sign1(PAYLOAD, P256)
    msg = cose.decode_sign1(token)
    detached = cose.Sign1Message(
        protected_bytes=msg.protected_bytes,
        protected=msg.protected,
        unprotected=msg.unprotected,
        payload=None,
        signature=msg.signature,
        tagged=True,
    )
    cose.verify_sign1(detached, P256.public_key(), detached_payload=PAYLOAD)
    with pytest.raises(MalformedError, match="detached"):
        cose.verify_sign1(detached, P256.public_key())


def test_cwt_outer_tag_is_accepted_only_when_allowed() -> None:
    token = cbor.dumps(cbor.Tag(61, cbor.loads(cose.sign1(PAYLOAD, P256))))
    cose.verify_sign1(token, P256.public_key(), outer_tags=(61,))
    with pytest.raises(MalformedError, match="got tag 61"):
        cose.verify_sign1(token, P256.public_key())


def test_decode_message_dispatches_on_the_tag() -> None:
    assert isinstance(cose.decode_message(cose.sign1(PAYLOAD, P256)), cose.Sign1Message)
    assert isinstance(cose.decode_message(cose.mac0(PAYLOAD, HMAC_KEY)), cose.Mac0Message)
    with pytest.raises(MalformedError, match="tagged"):
        cose.decode_message(cose.sign1(PAYLOAD, P256, tagged=False))


# --- named rejections --------------------------------------------------------------------------


def _rebuild(token: bytes, index: int, value: object) -> bytes:
    tag = cbor.loads(token)
    fields = list(tag.value)
    fields[index] = value
    return cbor.dumps(cbor.Tag(tag.tag, fields))


def test_wrong_key() -> None:
    with pytest.raises(SignatureError):
        cose.verify_sign1(cose.sign1(PAYLOAD, P256), P256_OTHER.public_key())


def test_wrong_hmac_key() -> None:
    with pytest.raises(SignatureError):
        cose.verify_mac0(cose.mac0(PAYLOAD, HMAC_KEY), SymmetricKey(secret=b"\x01" * 32))


def test_altered_payload() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 2, PAYLOAD + b"!")
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, P256.public_key())


def test_altered_payload_mac() -> None:
    token = _rebuild(cose.mac0(PAYLOAD, HMAC_KEY), 2, b"other")
    with pytest.raises(SignatureError):
        cose.verify_mac0(token, HMAC_KEY)


def test_altered_protected_header() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, cbor.dumps({1: -7, 3: 0}))
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, P256.public_key())


def test_protected_header_re_encoded_non_canonically_fails() -> None:
    # same map {1: -7}, different bytes (a two-byte length for the map): the received bytes count
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, bytes.fromhex("b8010126"))
    assert cose.decode_sign1(token).protected == {1: -7}
    with pytest.raises(SignatureError):
        cose.verify_sign1(token, P256.public_key())


def test_empty_protected_map_enters_sig_structure_as_empty_bytes() -> None:
    msg = cose.decode_sign1(_rebuild(cose.sign1(PAYLOAD, P256), 0, b"\xa0"))
    assert cose.sig_structure(msg) == cbor.dumps(["Signature1", b"", b"", PAYLOAD])


def test_altered_signature() -> None:
    token = cose.sign1(PAYLOAD, P256)
    msg = cose.decode_sign1(token)
    broken = bytes([msg.signature[0] ^ 1]) + msg.signature[1:]
    with pytest.raises(SignatureError):
        cose.verify_sign1(_rebuild(token, 3, broken), P256.public_key())


def test_signature_of_wrong_length() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 3, b"\x00" * 63)
    with pytest.raises(SignatureError, match="64 bytes"):
        cose.verify_sign1(token, P256.public_key())


def test_unknown_alg() -> None:
    token = cose.sign1(PAYLOAD, P256, protected={}, unprotected={})
    token = _rebuild(token, 0, cbor.dumps({1: -999}))
    with pytest.raises(AlgorithmError, match="-999"):
        cose.verify_sign1(token, P256.public_key())


def test_text_alg_is_unknown() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, cbor.dumps({1: "ES256"}))
    with pytest.raises(AlgorithmError, match="ES256"):
        cose.verify_sign1(token, P256.public_key())


def test_missing_alg() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, b"")
    with pytest.raises(AlgorithmError, match="no algorithm"):
        cose.verify_sign1(token, P256.public_key())


def test_unprotected_alg_for_a_signature_is_read() -> None:
    # RFC 9052 allows it; the key still decides (cose-wg sign-pass-01 relies on this)
    token = cose.sign1(PAYLOAD, P256)
    msg = cose.decode_sign1(_rebuild(_rebuild(token, 0, b""), 1, {1: -7}))
    assert msg.alg is Algorithm.ES256


def test_unprotected_alg_for_a_mac_is_rejected() -> None:
    token = _rebuild(_rebuild(cose.mac0(PAYLOAD, HMAC_KEY), 0, b""), 1, {1: 5})
    with pytest.raises(AlgorithmError, match="protected"):
        cose.verify_mac0(token, HMAC_KEY)


@pytest.mark.parametrize(
    ("sign_key", "verify_key", "message"),
    [
        (P256, P384.public_key(), "secp256r1, got secp384r1"),
        (P384, P256.public_key(), "secp384r1, got secp256r1"),
        (P256, ED25519.public_key(), "EC key on secp256r1, got an Ed25519 key"),
        (ED25519, P256.public_key(), "Ed25519 or Ed448 key, got an EC key"),
        (P256, HMAC_KEY, "symmetric"),
    ],
    ids=[
        "ES256-with-P384",
        "ES384-with-P256",
        "ES256-with-Ed25519",
        "EdDSA-with-P256",
        "ES256-HMAC",
    ],
)
def test_alg_key_mismatch(
    sign_key: cose.PrivateKey, verify_key: cose.VerificationKey, message: str
) -> None:
    with pytest.raises(AlgorithmError, match=message):
        cose.verify_sign1(cose.sign1(PAYLOAD, sign_key), verify_key)


def test_hmac_alg_in_a_sign1_is_rejected() -> None:
    # an attacker relabels a signed message as HMAC 256/256 hoping the verifier uses the public key
    # bytes as an HMAC secret: the alg is not a signature algorithm
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, cbor.dumps({1: 5}))
    with pytest.raises(AlgorithmError, match="MAC algorithm"):
        cose.verify_sign1(token, P256.public_key())


def test_mac0_with_a_public_key_is_rejected() -> None:
    with pytest.raises(AlgorithmError, match="symmetric"):
        cose.verify_mac0(cose.mac0(PAYLOAD, HMAC_KEY), P256.public_key())


def test_signature_alg_in_a_mac0_is_rejected() -> None:
    token = _rebuild(cose.mac0(PAYLOAD, HMAC_KEY), 0, cbor.dumps({1: -7}))
    with pytest.raises(AlgorithmError, match="not a MAC algorithm"):
        cose.verify_mac0(token, HMAC_KEY)


def test_sign1_refuses_a_mismatched_alg() -> None:
    with pytest.raises(AlgorithmError):
        cose.sign1(PAYLOAD, P256, alg=Algorithm.ES384)
    with pytest.raises(AlgorithmError):
        cose.sign1(PAYLOAD, P256, alg=-999)  # type: ignore[arg-type]


def test_short_hmac_key_is_refused() -> None:
    with pytest.raises(KeyFileError):
        SymmetricKey(secret=b"short")


def test_wrong_tag() -> None:
    token = cbor.dumps(cbor.Tag(998, list(cbor.loads(cose.sign1(PAYLOAD, P256)).value)))
    with pytest.raises(MalformedError, match="tag 998"):
        cose.decode_sign1(token)


def test_mac0_tag_for_sign1() -> None:
    with pytest.raises(MalformedError, match="got tag 17"):
        cose.decode_sign1(cose.mac0(PAYLOAD, HMAC_KEY))


def test_require_tag() -> None:
    with pytest.raises(MalformedError, match="tagged"):
        cose.decode_sign1(cose.sign1(PAYLOAD, P256, tagged=False), require_tag=True)


@pytest.mark.parametrize(
    "body",
    [
        [b"", {}, b""],
        [b"", {}, b"", b"", b""],
        [{}, {}, b"", b""],
        [b"", [], b"", b""],
        [b"", {}, "text", b""],
        [b"", {}, b"", None],
        [b"\x81\x01", {}, b"", b""],
    ],
    ids=["3-elements", "5-elements", "protected-map", "unprotected-array", "text-payload",
         "nil-signature", "protected-not-a-map"],
)  # fmt: skip
def test_malformed_structure(body: list[object]) -> None:
    with pytest.raises(MalformedError):
        cose.decode_sign1(cbor.dumps(cbor.Tag(18, body)))


def test_label_in_both_buckets() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 1, {1: -7})
    with pytest.raises(MalformedError, match="both"):
        cose.decode_sign1(token)


def test_non_integer_label() -> None:
    with pytest.raises(MalformedError, match="label"):
        cose.decode_sign1(_rebuild(cose.sign1(PAYLOAD, P256), 1, {b"x": 1}))


def test_kid_must_be_bytes() -> None:
    with pytest.raises(MalformedError, match="kid"):
        cose.decode_sign1(_rebuild(cose.sign1(PAYLOAD, P256), 1, {4: "text"}))


def test_unknown_critical_header() -> None:
    token = cose.sign1(PAYLOAD, P256, protected={2: [99], 99: 1})
    with pytest.raises(MalformedError, match="not understood"):
        cose.decode_sign1(token)


def test_crit_must_be_protected() -> None:
    with pytest.raises(MalformedError, match="crit"):
        cose.decode_sign1(cose.sign1(PAYLOAD, P256, unprotected={2: [1]}))


def test_understood_critical_header_is_accepted() -> None:
    cose.verify_sign1(cose.sign1(PAYLOAD, P256, protected={2: [3], 3: 60}), P256.public_key())


def test_duplicate_keys_in_the_protected_header() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, bytes.fromhex("a201260126"))
    with pytest.raises(CBORError, match=r"[Dd]uplicate"):
        cose.decode_sign1(token)


def test_trailing_bytes_after_the_message() -> None:
    with pytest.raises(CBORError, match="trailing"):
        cose.decode_sign1(cose.sign1(PAYLOAD, P256) + b"\x00")


def test_trailing_bytes_in_the_protected_header() -> None:
    token = _rebuild(cose.sign1(PAYLOAD, P256), 0, bytes.fromhex("a1012600"))
    with pytest.raises(CBORError, match="trailing"):
        cose.decode_sign1(token)


def test_oversize_message() -> None:
    from edgetrust.errors import OversizeError

    with pytest.raises(OversizeError):
        cose.decode_sign1(cose.sign1(b"x" * 70000, P256))


# --- properties ---------------------------------------------------------------------------------

SIGNED = cose.sign1(PAYLOAD, P256, kid=b"kid")
MACED = cose.mac0(PAYLOAD, HMAC_KEY, kid=b"kid")


def _mutate(token: bytes, data: st.DataObject) -> bytes:
    mutated = bytearray(token)
    for _ in range(data.draw(st.integers(1, 3))):
        kind = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        index = data.draw(st.integers(0, len(mutated) - 1))
        if kind == "flip":
            mutated[index] ^= data.draw(st.integers(1, 255))
        elif kind == "insert":
            mutated.insert(index, data.draw(st.integers(0, 255)))
        elif len(mutated) > 1:
            del mutated[index]
    return bytes(mutated)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_sign1_never_verifies(data: st.DataObject) -> None:
    mutated = _mutate(SIGNED, data)
    if mutated == SIGNED:
        return
    try:
        msg = cose.verify_sign1(mutated, P256.public_key())
    except EvidenceError:
        return
    # a mutation may only survive where the bytes are not signed: the unprotected header (or the
    # tag, for a message that then reads as untagged); the signed content must be unchanged
    original = cose.decode_sign1(SIGNED)
    assert msg.payload == original.payload
    assert msg.protected == original.protected
    assert msg.signature == original.signature


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_mac0_never_verifies(data: st.DataObject) -> None:
    mutated = _mutate(MACED, data)
    try:
        msg = cose.verify_mac0(mutated, HMAC_KEY)
    except EvidenceError:
        return
    original = cose.decode_mac0(MACED)
    assert msg.payload == original.payload
    assert msg.protected == original.protected
    assert msg.tag == original.tag


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_random_bytes_decode_sign1_raise_only_evidence_errors(data: bytes) -> None:
    for decode in (cose.decode_sign1, cose.decode_mac0, cose.decode_message):
        with contextlib.suppress(EvidenceError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.none() | st.binary(max_size=8) | st.integers(-10, 10) | st.text(max_size=3)
        | st.dictionaries(st.integers(-8, 8) | st.text(max_size=2),
                          st.integers(-40, 40) | st.binary(max_size=4)
                          | st.lists(st.integers(-3, 100), max_size=3),
                          max_size=4),
        min_size=0, max_size=5,
    ),
    st.sampled_from([None, 17, 18, 61]),
)  # fmt: skip
def test_random_structures_raise_only_evidence_errors(
    fields: list[object], tag: int | None
) -> None:
    for index in range(len(fields)):
        if isinstance(fields[index], dict) and index == 0:
            fields[index] = cbor.dumps(fields[index])
    data = cbor.dumps(fields if tag is None else cbor.Tag(tag, fields))
    for verify, key in ((cose.verify_sign1, P256.public_key()), (cose.verify_mac0, HMAC_KEY)):
        with contextlib.suppress(EvidenceError):
            verify(data, key)  # type: ignore[operator]
