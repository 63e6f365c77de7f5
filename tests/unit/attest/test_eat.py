"""EAT claims model, tokens, nonce and freshness, the device profile, and decoder properties."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.attest import cbor, cose, eat
from edgetrust.errors import (
    AlgorithmError,
    ClaimError,
    EvidenceError,
    FreshnessError,
    NonceError,
    SignatureError,
)

DEVICE_KEY = ec.derive_private_key(0xD1CE, ec.SECP256R1())
OTHER_KEY = ec.derive_private_key(0xBAD, ec.SECP256R1())
TLS_KEY = ec.derive_private_key(0x715, ec.SECP256R1())
NONCE = bytes(range(32))
IAT = 1_750_000_000
NOW = datetime.fromtimestamp(IAT + 5, UTC)


def device_claims(**changes: Any) -> eat.EatClaims:
    claims = eat.EatClaims(
        eat_profile=eat.DEVICE_PROFILE,
        nonce=NONCE,
        ueid=b"\x01" + bytes(range(32)),
        iat=IAT,
        oemid=b"\x00\x1b\x63",
        hwmodel=b"esp32-s3",
        swname="edgetrust-fw",
        swversion=eat.Version(version="1.4.0"),
        dbgstat=eat.DebugStatus.DISABLED_PERMANENTLY,
        oemboot=True,
        cnf_key=TLS_KEY.public_key(),
        measurements=(
            eat.Measurement(
                name="bootloader", digest_alg="sha-256", digest=b"\x01" * 32, svn=2, layer=0
            ),
            eat.Measurement(
                name="firmware", digest_alg="sha-384", digest=b"\x02" * 48, version="1.4.0", layer=1
            ),
            eat.Measurement(name="model:demo", digest_alg="sha-256", digest=b"\x03" * 32),
        ),
    )
    return dataclasses.replace(claims, **changes)


def payload_with(**changes: Any) -> dict[Any, Any]:
    base: dict[Any, Any] = cbor.loads(eat.encode_claims(device_claims()))
    for key, value in changes.items():
        label = eat.Claim[key.upper()]
        if value is None:
            base.pop(label, None)
        else:
            base[label] = value
    return base


# --- round trips ------------------------------------------------------------------------------


def test_device_token_round_trip() -> None:
    claims = device_claims()
    token = eat.make_eat(claims, DEVICE_KEY, kid=b"leaf")
    verified = eat.verify_eat(
        token, DEVICE_KEY.public_key(), expected_nonce=NONCE, now=NOW, max_age=timedelta(minutes=1)
    )
    assert verified == claims
    assert eat.check_device_profile(verified) is verified
    assert [m.name for m in verified.device_measurements] == [
        "bootloader",
        "firmware",
        "model:demo",
    ]
    assert verified.cnf_key == TLS_KEY.public_key()


def test_make_is_deterministic() -> None:
    assert eat.make_eat(device_claims(), DEVICE_KEY) == eat.make_eat(device_claims(), DEVICE_KEY)


def test_measurements_travel_as_one_report() -> None:
    payload = cbor.loads(eat.encode_claims(device_claims()))
    (entry,) = payload[eat.Claim.MEASUREMENTS]
    assert entry[0] == eat.MEASUREMENT_CONTENT_FORMAT
    report = cbor.loads(entry[1])
    assert report[0] == {1: "bootloader", 2: "sha-256", 3: b"\x01" * 32, 5: 2, 6: 0}


def test_eddsa_and_cwt_tag() -> None:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x05" * 32)
    token = eat.make_eat(device_claims(), key, cwt_tag=True)
    assert cbor.loads(token).tag == eat.CWT_TAG
    msg, claims = eat.decode_eat(token)
    assert msg.alg is cose.Algorithm.EdDSA
    assert eat.verify_eat(token, key.public_key(), now=NOW) == claims


def test_hmac_key_makes_a_mac0() -> None:
    key = cose.SymmetricKey(secret=b"k" * 32)
    token = eat.make_eat(eat.EatClaims(iat=IAT, nonce=NONCE), key)
    msg, _ = eat.decode_eat(token)
    assert isinstance(msg, cose.Mac0Message)
    assert eat.verify_eat(token, key, now=NOW).nonce == NONCE


def test_untagged_token_reads_as_sign1() -> None:
    payload = eat.encode_claims(device_claims())
    token = cose.sign1(payload, DEVICE_KEY, tagged=False)
    assert eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW) == device_claims()


def test_unknown_claims_are_kept() -> None:
    payload = payload_with()
    payload[-70000] = b"private"
    payload["vendor-claim"] = [1, 2]
    payload[300] = {"x": 1}
    claims = eat.decode_claims(payload)
    assert claims.extra == {-70000: b"private", "vendor-claim": [1, 2], 300: {"x": 1}}
    again = eat.decode_claims(cbor.loads(eat.encode_claims(claims)))
    assert again == claims


def test_all_registered_claims_decode() -> None:
    payload = {
        1: "issuer", 2: "subject", 3: "audience", 4: IAT + 60, 5: IAT - 60, 6: IAT, 7: b"cti",
        8: {3: b"kid"}, 10: [b"a" * 8, b"b" * 64], 256: b"\x02" + b"e" * 6,
        257: {"boot": b"\x01" + b"s" * 16}, 258: 64242, 259: b"model", 260: ["1.0", 1],
        261: 3600, 262: False, 263: 0, 264: {1: 48.85, 2: 2.35, 3: 35}, 265: "urn:example",
        266: {"tee": {10: b"n" * 8, 262: True}, "nested": b"\xd2\x84", "digest": [-16, b"d"]},
        267: 7, 268: b"seed", 269: [["https://dloa", "1"]], 270: "sw", 271: ["2.0"],
        272: [[258, b"coswid"]], 273: [[258, b"evidence"]], 274: [["x", [1]]], 275: 2,
    }  # fmt: skip
    claims = eat.decode_claims(payload)
    assert claims.nonces() == (b"a" * 8, b"b" * 64)
    assert claims.cnf_kid == b"kid"
    assert claims.oemid == 64242
    assert claims.dbgstat is eat.DebugStatus.ENABLED
    assert claims.location == {1: 48.85, 2: 2.35, 3: 35}
    assert claims.submods is not None
    tee = claims.submods["tee"]
    assert isinstance(tee, eat.EatClaims)
    assert tee.oemboot is True
    assert claims.submods["nested"] == b"\xd2\x84"
    assert claims.measurements == (eat.TypedContent(content_format=258, content=b"evidence"),)
    assert claims.intuse == eat.IntendedUse.REGISTRATION
    assert eat.decode_claims(cbor.loads(eat.encode_claims(claims))) == claims
    named = claims.to_json()
    assert named["eat_nonce"] == ["61" * 8, "62" * 64]
    assert named["cnf"] == {"kid": b"kid".hex()}
    assert set(named) >= {"iss", "ueid", "sueids", "submods", "measres", "intuse"}


def test_to_json_of_the_device_profile() -> None:
    named = device_claims().to_json()
    assert named["eat_profile"] == eat.DEVICE_PROFILE
    assert named["measurements"][1] == {
        "name": "firmware",
        "digest_alg": "sha-384",
        "digest": "02" * 48,
        "version": "1.4.0",
        "svn": None,
        "layer": 1,
    }
    assert named["cnf"]["cose_key"]["kty"] == 2
    assert named["dbgstat"] == 3


# --- wrong types (one test per kind) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("claim", "value", "message"),
    [
        ("iss", b"bytes", "iss must be text"),
        ("exp", "tomorrow", "NumericDate"),
        ("iat", True, "NumericDate"),
        ("iat", float("nan"), "not a number"),
        ("cti", "text", "cti must be a byte string"),
        ("eat_nonce", b"short", r"8\.\.64 bytes"),
        ("eat_nonce", b"x" * 65, r"8\.\.64 bytes"),
        ("eat_nonce", [b"x" * 8], "two or more"),
        ("eat_nonce", "text", "byte string"),
        ("ueid", b"\x01" * 6, r"7\.\.33"),
        ("ueid", b"\x01" * 34, r"7\.\.33"),
        ("oemid", b"\x01\x02", "oemid"),
        ("oemid", "acme", "oemid"),
        ("hwmodel", b"", r"1\.\.32"),
        ("hwmodel", b"m" * 33, r"1\.\.32"),
        ("hwversion", "1.0", r"\[version, \? scheme\]"),
        ("swversion", [1], "version must be text"),
        ("swversion", ["1.0", 1.5], "scheme"),
        ("uptime", -1, "unsigned"),
        ("bootcount", True, "unsigned"),
        ("oemboot", 1, "boolean"),
        ("dbgstat", 9, "unknown value"),
        ("dbgstat", "enabled", "unknown value"),
        ("location", {1: 1.0}, "longitude"),
        ("eat_profile", 17, "URI"),
        ("submods", [], "non-empty map"),
        ("submods", {1: {}}, "names must be text"),
        ("submods", {"a": 5}, "neither"),
        ("sueids", {"a": b"short"}, r"7\.\.33"),
        ("manifests", [[70000, b"x"]], "content-format"),
        ("manifests", [[1]], "content-type, content"),
        ("measres", [], "non-empty"),
        ("cnf", {1: {1: 2}, 3: b"x"}, "exactly one"),
        ("cnf", {2: b"encrypted"}, "unsupported confirmation method"),
        ("cnf", {1: {1: 4, -1: b"k" * 32}}, "symmetric"),
        ("cnf", {1: {1: 2, -1: 1, -2: b"\x00" * 32, -3: b"\x00" * 32}}, "invalid EC2"),
        ("intuse", "csr", "unsigned"),
    ],
)
def test_wrong_claim_types(claim: str, value: object, message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        eat.decode_claims(payload_with(**{claim: value}))


def test_claim_key_zero_is_reserved() -> None:
    with pytest.raises(ClaimError, match="reserved"):
        eat.decode_claims({0: 1})


@pytest.mark.parametrize("key", [1.5, b"k", (1, 2), True, None])
def test_claim_keys_must_be_int_or_text(key: object) -> None:
    with pytest.raises(ClaimError, match="neither an integer nor text"):
        eat.decode_claims({key: 1})


def test_claims_set_must_be_a_map() -> None:
    with pytest.raises(ClaimError):
        eat.decode_claims([1, 2])  # type: ignore[arg-type]


def test_payload_that_is_not_a_map() -> None:
    token = cose.sign1(cbor.dumps([1, 2]), DEVICE_KEY)
    with pytest.raises(EvidenceError, match="map"):
        eat.verify_eat(token, DEVICE_KEY.public_key())


def test_submods_depth_is_bounded() -> None:
    inner: dict[Any, Any] = {262: True}
    for _ in range(eat.MAX_SUBMOD_DEPTH):
        inner = {266: {"sub": inner}}
    eat.decode_claims(inner)
    with pytest.raises(ClaimError, match="deeper"):
        eat.decode_claims({266: {"sub": inner}})


# --- device profile measurements -------------------------------------------------------------


@pytest.mark.parametrize(
    ("measurement", "message"),
    [
        ({1: "m", 2: "sha-256", 3: b"\x00" * 31}, "32 bytes"),
        ({1: "m", 2: "md5", 3: b"\x00" * 16}, "unsupported digest"),
        ({1: "", 2: "sha-256", 3: b"\x00" * 32}, "non-empty text"),
        ({1: "m", 2: "sha-256", 3: b"\x00" * 32, 5: -1}, "svn"),
        ({1: "m", 2: "sha-256", 3: b"\x00" * 32, 6: "0"}, "layer"),
        ({1: "m", 2: "sha-256", 3: b"\x00" * 32, 4: 1}, "version"),
        ({1: "m", 2: "sha-256", 3: b"\x00" * 32, 9: 1}, "unknown measurement field"),
        ("not a map", "must be a map"),
    ],
)
def test_wrong_measurements_of_the_profile(measurement: object, message: str) -> None:
    payload = payload_with(measurements=[[60, cbor.dumps([measurement])]])
    with pytest.raises(ClaimError, match=message):
        eat.decode_claims(payload)


@pytest.mark.parametrize(
    "entries",
    [[[258, b"coswid"]], [[60, "text"]], [[60, cbor.dumps({1: 2})]], [[60, cbor.dumps([])]]],
    ids=["other-format", "text-content", "report-not-array", "empty-report"],
)
def test_profile_needs_its_measurement_format(entries: list[Any]) -> None:
    with pytest.raises(EvidenceError):
        eat.decode_claims(payload_with(measurements=entries))


def test_other_profiles_keep_measurements_raw() -> None:
    payload = payload_with(eat_profile="urn:other", measurements=[[258, b"coswid"]])
    claims = eat.decode_claims(payload)
    assert claims.measurements == (eat.TypedContent(content_format=258, content=b"coswid"),)
    assert claims.device_measurements == ()


@pytest.mark.parametrize(
    "missing",
    ["eat_nonce", "ueid", "iat", "oemid", "hwmodel", "swname", "swversion", "dbgstat", "oemboot",
     "cnf", "measurements"],
)  # fmt: skip
def test_profile_required_claims(missing: str) -> None:
    claims = eat.decode_claims(payload_with(**{missing: None}))
    with pytest.raises(ClaimError, match=missing):
        eat.check_device_profile(claims)


def test_profile_name() -> None:
    with pytest.raises(ClaimError, match="eat_profile"):
        eat.check_device_profile(device_claims(eat_profile="urn:other"))


def test_profile_needs_exactly_one_nonce() -> None:
    with pytest.raises(ClaimError, match="one nonce"):
        eat.check_device_profile(device_claims(nonce=(NONCE, NONCE)))


def test_profile_measurement_names_unique() -> None:
    twice = eat.Measurement(name="fw", digest_alg="sha-256", digest=b"\x00" * 32)
    with pytest.raises(ClaimError, match="unique"):
        eat.check_device_profile(device_claims(measurements=(twice, twice)))


# --- verification: named rejections ------------------------------------------------------------


def test_wrong_key() -> None:
    with pytest.raises(SignatureError):
        eat.verify_eat(eat.make_eat(device_claims(), DEVICE_KEY), OTHER_KEY.public_key(), now=NOW)


def test_altered_payload() -> None:
    token = eat.make_eat(device_claims(), DEVICE_KEY)
    tag = cbor.loads(token)
    fields = list(tag.value)
    fields[2] = eat.encode_claims(device_claims(dbgstat=eat.DebugStatus.ENABLED))
    with pytest.raises(SignatureError):
        eat.verify_eat(cbor.dumps(cbor.Tag(18, fields)), DEVICE_KEY.public_key(), now=NOW)


def test_mac0_token_with_a_public_key() -> None:
    token = eat.make_eat(eat.EatClaims(iat=IAT), cose.SymmetricKey(secret=b"k" * 32))
    with pytest.raises(AlgorithmError):
        eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW)


def test_nonce_mismatch() -> None:
    token = eat.make_eat(device_claims(), DEVICE_KEY)
    with pytest.raises(NonceError, match="does not match"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), expected_nonce=b"\xff" * 32, now=NOW)


def test_nonce_missing() -> None:
    token = eat.make_eat(device_claims(nonce=None), DEVICE_KEY)
    with pytest.raises(NonceError, match="no nonce"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), expected_nonce=NONCE, now=NOW)


def test_any_of_several_nonces_matches() -> None:
    token = eat.make_eat(device_claims(nonce=(b"\xee" * 16, NONCE)), DEVICE_KEY)
    eat.verify_eat(token, DEVICE_KEY.public_key(), expected_nonce=NONCE, now=NOW)


def test_expired() -> None:
    token = eat.make_eat(device_claims(exp=IAT + 60), DEVICE_KEY)
    eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW)
    with pytest.raises(FreshnessError, match="expired"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), now=datetime.fromtimestamp(IAT + 60, UTC))


def test_not_yet_valid() -> None:
    token = eat.make_eat(device_claims(nbf=IAT + 60), DEVICE_KEY)
    with pytest.raises(FreshnessError, match="not valid before"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW)


def test_issued_in_the_future() -> None:
    token = eat.make_eat(device_claims(iat=IAT + 3600), DEVICE_KEY)
    with pytest.raises(FreshnessError, match="future"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW)
    eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW, leeway=timedelta(hours=1))


def test_too_old() -> None:
    token = eat.make_eat(device_claims(), DEVICE_KEY)
    later = NOW + timedelta(minutes=5)
    with pytest.raises(FreshnessError, match="ago"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), now=later, max_age=timedelta(minutes=1))


def test_max_age_without_iat() -> None:
    token = eat.make_eat(device_claims(iat=None), DEVICE_KEY)
    with pytest.raises(FreshnessError, match="no iat"):
        eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW, max_age=timedelta(minutes=1))


def test_time_claims_without_a_time_fail_closed() -> None:
    token = eat.make_eat(device_claims(exp=IAT + 60), DEVICE_KEY)
    with pytest.raises(FreshnessError, match="no time"):
        eat.verify_eat(token, DEVICE_KEY.public_key())
    with pytest.raises(FreshnessError, match="no time"):
        eat.verify_eat(
            eat.make_eat(device_claims(), DEVICE_KEY),
            DEVICE_KEY.public_key(),
            max_age=timedelta(minutes=1),
        )


def test_naive_now_is_utc() -> None:
    token = eat.make_eat(device_claims(exp=IAT + 60), DEVICE_KEY)
    eat.verify_eat(token, DEVICE_KEY.public_key(), now=NOW.replace(tzinfo=None))


def test_detached_payload_is_rejected() -> None:
    token = cose.sign1(eat.encode_claims(device_claims()), DEVICE_KEY)
    tag = cbor.loads(token)
    fields = list(tag.value)
    fields[2] = None
    with pytest.raises(ClaimError, match="detached"):
        eat.decode_eat(cbor.dumps(cbor.Tag(18, fields)))


# --- properties ---------------------------------------------------------------------------------

TOKEN = eat.make_eat(device_claims(), DEVICE_KEY, kid=b"leaf")
CLAIM_VALUES = (
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.binary(max_size=70)
    | st.text(max_size=8) | st.floats(allow_nan=True)
    | st.lists(st.binary(max_size=40) | st.integers(-5, 70000) | st.text(max_size=4), max_size=3)
    | st.dictionaries(st.integers(-4, 4) | st.text(max_size=3),
                      st.binary(max_size=40) | st.integers() | st.booleans(), max_size=3)
)  # fmt: skip
CLAIM_KEYS = st.sampled_from([*eat.CLAIM_NAMES, 0, -75000, 2394]) | st.text(max_size=4)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(CLAIM_KEYS, CLAIM_VALUES, max_size=8))
def test_random_claims_raise_only_evidence_errors(claims: dict[Any, Any]) -> None:
    with contextlib.suppress(EvidenceError):
        eat.decode_claims(claims)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(CLAIM_KEYS, CLAIM_VALUES, max_size=6))
def test_random_claims_on_the_profile_raise_only_evidence_errors(claims: dict[Any, Any]) -> None:
    claims = {**payload_with(), **claims}
    with contextlib.suppress(EvidenceError):
        eat.check_device_profile(eat.decode_claims(claims))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_token_never_verifies_with_other_content(data: st.DataObject) -> None:
    mutated = bytearray(TOKEN)
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(mutated) - 1))
        mutated[index] ^= data.draw(st.integers(1, 255))
    try:
        claims = eat.verify_eat(bytes(mutated), DEVICE_KEY.public_key(), now=NOW)
    except EvidenceError:
        return
    # survivable only in unsigned bytes (the unprotected kid): the claims are the signed ones
    assert claims == device_claims()
    assert cose.decode_sign1(bytes(mutated)).payload == cose.decode_sign1(TOKEN).payload


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_tokens_raise_only_evidence_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        eat.decode_eat(data)
    with contextlib.suppress(EvidenceError):
        eat.verify_eat(data, DEVICE_KEY.public_key(), now=NOW)
