"""The fast verify path of EAT evidence accepts and refuses exactly what the plain checks do.

verify_eat's hot path (bench/bench_evidence.py) uses shortcuts: reused strict CBOR readers, a
cached Sig_structure prefix, inline claim checks in front of the per-claim decoders, inline
measurement checks, an EC point check in Python for the cnf key with the cryptography key object
built on first read, the measurements built on first read, and "draft" construction of the
frozen dataclasses. Each test here pins one shortcut to the rule it stands for.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import fractions
import pickle
import threading
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgetrust.attest import cbor, cose, eat
from edgetrust.attest.cose import decoding as cose_decoding
from edgetrust.attest.cose import envelope as cose_envelope
from edgetrust.attest.cose import verification as cose_verification
from edgetrust.attest.ear import Tier
from edgetrust.attest.eat import cnf, decoding, device_profile, measurements, values
from edgetrust.attest.keys import decode_cose_key
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.errors import CBORError, ClaimError, EvidenceError
from tests.unit.attest.test_appraisal import NOW, Device, boot, claims_for, run

DEVICE_KEY = ec.derive_private_key(0xD1CE, ec.SECP256R1())
CURVES = {1: ec.SECP256R1(), 2: ec.SECP384R1(), 3: ec.SECP521R1()}
SIZES = {1: 32, 2: 48, 3: 66}
# the field primes of P-256, P-384 and P-521 (FIPS 186-5 / SP 800-186)
PRIMES = {
    1: 2**256 - 2**224 + 2**192 + 2**96 - 1,
    2: 2**384 - 2**128 - 2**96 + 2**32 - 1,
    3: 2**521 - 1,
}


# ---- cnf: structure checked by verify_eat, the point when the key is first read --------------


def cose_key(crv: int, x: bytes, y: bytes | bool) -> dict[int, Any]:
    return {1: 2, -1: crv, -2: x, -3: y}


def cryptography_error(crv: int, x: bytes, y: bytes) -> str | None:
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(CURVES[crv], b"\x04" + x + y)
    except ValueError as e:
        return str(e)
    return None


def point_of(crv: int, seed: int) -> tuple[bytes, bytes]:
    numbers = ec.derive_private_key(seed, CURVES[crv]).public_key().public_numbers()
    return numbers.x.to_bytes(SIZES[crv], "big"), numbers.y.to_bytes(SIZES[crv], "big")


def off_curve_point() -> tuple[bytes, bytes]:
    x, y = point_of(1, 0xABC)
    return x, ((int.from_bytes(y, "big") + 1) % PRIMES[1]).to_bytes(32, "big")


def signed(payload: dict[Any, Any], key: Any = DEVICE_KEY) -> bytes:
    return cose.sign1(cbor.dumps(payload), key)


@st.composite
def coordinates(draw: st.DrawFn) -> tuple[int, bytes, bytes]:
    """Points on the curve, slightly damaged ones, out-of-range ones and random bytes."""
    crv = draw(st.sampled_from(sorted(CURVES)))
    size, p = SIZES[crv], PRIMES[crv]
    x, y = point_of(crv, draw(st.integers(1, 2**64)))
    xi, yi = int.from_bytes(x, "big"), int.from_bytes(y, "big")
    change = draw(st.sampled_from(["none", "negate", "bump", "x+p", "y+p", "random", "zero"]))
    if change == "negate":  # (x, p - y) is the other point with that x: valid
        yi = p - yi
    elif change == "bump":
        yi = (yi + draw(st.integers(1, 5))) % p
    elif change == "x+p" and xi + p < 1 << (8 * size):  # same residue, out of range
        xi += p
    elif change == "y+p" and yi + p < 1 << (8 * size):
        yi += p
    elif change == "random":
        xi = int.from_bytes(draw(st.binary(min_size=size, max_size=size)), "big")
        yi = int.from_bytes(draw(st.binary(min_size=size, max_size=size)), "big")
    elif change == "zero":
        xi = yi = 0
    return crv, xi.to_bytes(size, "big"), yi.to_bytes(size, "big")


@settings(max_examples=200, deadline=None)
@given(coordinates())
def test_cnf_point_is_judged_as_decode_cose_key_judges_it(point: tuple[int, bytes, bytes]) -> None:
    crv, x, y = point
    content = cose_key(crv, x, y)
    try:
        expected: object = decode_cose_key(content, error=ClaimError)
    except ClaimError as e:
        expected = str(e)
    assert isinstance(expected, str) == (cryptography_error(crv, x, y) is not None)
    # decode_claims: at once
    try:
        eager: object = eat.decode_claims({8: {1: content}}).cnf_key
    except ClaimError as e:
        eager = str(e)
    # the verify path: the structure passes, the point is judged on first read, the same way
    lazy_claims = decoding._decode_claims({8: {1: content}}, 0)
    try:
        lazy: object = lazy_claims.cnf_key
    except ClaimError as e:
        lazy = str(e)
    assert eager == lazy == expected


@pytest.mark.parametrize("crv", sorted(CURVES))
def test_cnf_keys_of_every_curve_verify(crv: int) -> None:
    key = ec.derive_private_key(0xC0FFEE, CURVES[crv]).public_key()
    claims = eat.verify_eat(eat.make_eat(eat.EatClaims(cnf_key=key), DEVICE_KEY), DEVICE_KEY)
    assert claims.cnf_key == key


@pytest.mark.parametrize(
    "content",
    [
        {1: 2, -1: 1, -2: b"\x01" * 32, -3: True},  # compressed point
        {1: 2, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32, 2: b"kid"},  # extra label
        {1: 2.0, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32},  # kty as a float
        {1: 2, -1: 4, -2: b"\x01" * 32, -3: b"\x02" * 32},  # unsupported curve
        {1: 2, -1: 1, -2: b"\x01" * 31, -3: b"\x02" * 32},  # short x
        {1: 2, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 33},  # long y
        {1: 2, -1: True, -2: b"\x01" * 32, -3: b"\x02" * 32},  # curve as a boolean
        {1: 1, -1: 6, -2: b"\x01" * 32},  # OKP
    ],
)
def test_other_cose_keys_take_the_full_decoder(content: dict[int, Any]) -> None:
    # Not the plain uncompressed EC2 form: keys.decode_cose_key decides, at once.
    assert cnf._pending_ec2_key(content) is None
    try:
        expected: object = decode_cose_key(content, error=ClaimError)
    except ClaimError as e:
        expected = str(e)
    try:
        got: object = decoding._decode_claims({8: {1: content}}, 0).cnf_key
    except ClaimError as e:
        got = str(e)
    assert got == expected


@pytest.mark.parametrize(
    ("cnf", "message"),
    [
        ({1: {1: 2, -1: 1, -2: b"\x01" * 31, -3: b"\x02" * 32}}, "x must be 32 bytes"),
        ({1: {1: 2, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 31}}, "y must be 32 bytes"),
        ({1: {1: 2, -1: 9, -2: b"\x01" * 32, -3: b"\x02" * 32}}, "unsupported EC2 curve"),
        ({1: {1: 2, -1: 1, -2: "x", -3: b"\x02" * 32}}, "must be a byte string"),
        ({1: {1: 7, -1: 1}}, "unsupported COSE_Key type"),
        ({1: {1: 4, -1: b"k" * 32}}, "symmetric"),
        ({1: 5}, "COSE_Key must be a CBOR map"),
        ({1: {}, 3: b"kid"}, "exactly one"),
        ({4: b"x"}, "unsupported confirmation method"),
        ([1], "exactly one"),
    ],
)
def test_malformed_cnf_is_refused_by_verify_eat(cnf: object, message: str) -> None:
    with pytest.raises(ClaimError, match=message):
        eat.verify_eat(signed({10: b"n" * 8, 8: cnf}), DEVICE_KEY)


def test_off_curve_cnf_is_refused_on_first_read_after_verify_eat() -> None:
    token = signed({10: b"n" * 8, 8: {1: cose_key(1, *off_curve_point())}})
    claims = eat.verify_eat(token, DEVICE_KEY.public_key())  # the signature and every type pass
    assert claims.nonce == b"n" * 8
    with pytest.raises(ClaimError, match="invalid EC2 key"):
        _ = claims.cnf_key
    with pytest.raises(ClaimError, match="invalid EC2 key"):
        _ = claims.cnf_key  # every read, not only the first
    with pytest.raises(ClaimError, match="invalid EC2 key"):
        eat.decode_eat(token)  # builds every deferred object at once
    with pytest.raises(ClaimError, match="invalid EC2 key"):
        eat.decode_claims(cbor.loads(cose.decode_sign1(token).payload or b""))


def test_off_curve_cnf_in_a_submodule_is_refused_by_decode_eat() -> None:
    inner = {8: {1: cose_key(1, *off_curve_point())}}
    token = signed({10: b"n" * 8, 266: {"tee": inner}})
    claims = eat.verify_eat(token, DEVICE_KEY)
    sub: Any = (claims.submods or {})["tee"]
    with pytest.raises(ClaimError, match="invalid EC2 key"):
        _ = sub.cnf_key
    with pytest.raises(ClaimError, match="invalid EC2 key"):
        eat.decode_eat(token)


@pytest.fixture(scope="module")
def device() -> Device:
    return boot(CertificateAuthority.create(now=NOW - dt.timedelta(days=30)))


def test_appraisal_refuses_an_off_curve_cnf_key(device: Device) -> None:
    claims = eat.encode_claims_map(claims_for(device))
    claims[8] = {1: cose_key(1, *off_curve_point())}
    result = run(device, cose.sign1(cbor.dumps(claims), device.leaf_key))
    assert "token_malformed" in result.reasons
    assert result.status is Tier.CONTRAINDICATED
    assert not result.affirming
    assert isinstance(result.error, ClaimError)
    assert "invalid EC2 key" in str(result.error)


# ---- deferred fields behave like plain fields ---------------------------------------------------


def test_verified_claims_equal_the_made_ones(device: Device) -> None:
    made = claims_for(device)
    claims = eat.verify_eat(eat.make_eat(made, device.leaf_key), device.leaf_key.public_key())
    assert type(claims) is eat.EatClaims
    assert "Pending" not in repr(claims)  # the first read, by repr, builds them
    assert claims == made
    assert claims.cnf_key is claims.cnf_key  # built once
    assert claims.measurements is claims.measurements
    assert all(type(m) is eat.Measurement for m in claims.measurements or ())
    assert claims.device_measurements == made.device_measurements
    assert dataclasses.replace(claims) == made
    assert claims.to_json() == made.to_json()
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.cnf_key = None  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        claims.measurements = None  # type: ignore[misc]


def test_deferred_fields_survive_copying(device: Device) -> None:
    made = claims_for(device, cnf_key=None)  # (cryptography keys do not pickle)
    claims = eat.verify_eat(eat.make_eat(made, device.leaf_key), device.leaf_key.public_key())
    assert pickle.loads(pickle.dumps(claims)) == made  # noqa: S301 - our own bytes


def test_drafts_build_real_frozen_instances() -> None:
    version = values._version(["1.0", 3], eat.Claim.SWVERSION)
    assert type(version) is eat.Version
    assert version == eat.Version(version="1.0", scheme=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        version.version = "2"  # type: ignore[misc]
    m = eat.Measurement.from_cbor({1: "a", 2: "sha-256", 3: b"\x00" * 32, 5: 1})
    assert type(m) is eat.Measurement
    assert m == eat.Measurement(name="a", digest_alg="sha-256", digest=b"\x00" * 32, svn=1)


# ---- claim checks: the inline fast path accepts nothing its decoder refuses ------------------


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**65), 2**65),
    st.floats(allow_nan=True),
    st.binary(max_size=70),
    st.text(max_size=40),
    st.lists(st.binary(min_size=8, max_size=9), max_size=3),
    st.dictionaries(st.integers(-3, 3), st.binary(max_size=4), max_size=2),
)


def _decoded(decode: Any) -> tuple[str, Any]:
    try:
        return ("ok", decode())
    except ClaimError as e:
        return ("error", type(e))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(sorted(decoding._DECODERS)), value=VALUES)
def test_claim_fast_path_agrees_with_the_claim_decoders(key: int, value: object) -> None:
    attr, decode = decoding._DECODERS[key]
    expected = _decoded(lambda: decode(value, None, 0))
    got = _decoded(lambda: eat.decode_claims({key: value}))
    if got[0] == "ok" and expected[0] == "ok":
        claims: Any = got[1]
        if attr == "cnf":
            assert (claims.cnf_key, claims.cnf_kid) == expected[1]
        else:
            assert getattr(claims, attr) == expected[1]
    else:
        assert got == expected


MEASUREMENT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 3),
    st.sampled_from(["", "m", "sha-256", "sha-384", "md5"]),
    st.binary(min_size=31, max_size=33),
    st.binary(min_size=48, max_size=48),
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.integers(0, 7), MEASUREMENT_VALUES, max_size=7))
def test_measurement_fast_check_agrees_with_the_full_one(m: dict[int, Any]) -> None:
    expected = _decoded(lambda: eat.Measurement._checked(m))
    assert _decoded(lambda: eat.Measurement.from_cbor(m)) == expected
    if measurements._is_plain_measurement(m):
        assert expected[0] == "ok"


# ---- strict CBOR readers reused per thread ----------------------------------------------------


ITEMS = st.recursive(
    st.one_of(st.integers(), st.binary(max_size=5000), st.text(max_size=50), st.none()),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.integers(), inner, max_size=6),
    max_leaves=30,
)


def _fresh_loads(data: bytes) -> object:
    # what loads did before the readers were reused: one new decoder per input
    import io

    import cbor2

    stream = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(
            stream,
            max_depth=cbor.DEFAULT_MAX_DEPTH,
            allow_indefinite=False,
            allow_duplicate_keys=False,
            semantic_decoders=cbor._SEMANTIC_DECODERS,
        ).decode()
    except Exception:  # noqa: BLE001 - any cbor2 failure
        return "error"
    return value if stream.tell() == len(data) else "error"


def _loads(data: bytes) -> object:
    try:
        return cbor.loads(data, max_size=1 << 20)
    except CBORError:
        return "error"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ITEMS, st.integers(-3, 3), st.binary(max_size=2)), max_size=6))
def test_reused_readers_decode_like_fresh_decoders(
    inputs: list[tuple[Any, int, bytes]],
) -> None:
    # valid items, truncated ones and ones with junk after them, one after the other
    for item, cut, junk in inputs:
        data = cbor.dumps(item)
        if cut < 0:
            data = data[:cut]
        data += junk if cut > 0 else b""
        if not data:
            continue
        assert _loads(data) == _fresh_loads(data)


def test_readers_are_per_thread() -> None:
    items = [cbor.dumps({i: [b"x" * (i * 97), "t" * i]}) for i in range(40)]
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                for i, data in enumerate(items):
                    assert cbor.loads(data) == {i: [b"x" * (i * 97), "t" * i]}
                    with pytest.raises(CBORError):
                        cbor.loads(data[:-1])
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


# ---- Sig_structure with the cached prefix ------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    protected=st.sampled_from([b"", b"\xa1\x01\x26", b"\xa1\x01\x27", b"\xa2\x01\x26\x04\x41k"]),
    aad=st.binary(max_size=30),
    payload=st.binary(max_size=70000),
)
def test_sig_structure_is_the_encoded_array(protected: bytes, aad: bytes, payload: bytes) -> None:
    decoded = cbor.loads(protected) if protected else {}
    msg = cose.Sign1Message(
        protected_bytes=protected,
        protected=decoded,
        unprotected={},
        payload=payload,
        signature=b"",
        tagged=True,
    )
    body = protected if decoded else b""
    expected = cbor.dumps(["Signature1", body, aad, payload])
    assert cose.sig_structure(msg, external_aad=aad) == expected


def test_mutated_tokens_never_verify() -> None:
    token = eat.make_eat(eat.EatClaims(nonce=b"n" * 8, iat=1), DEVICE_KEY)
    key = DEVICE_KEY.public_key()
    eat.verify_eat(token, key)
    for i in range(len(token)):
        for bit in (0x01, 0x80):
            mutated = bytearray(token)
            mutated[i] ^= bit
            with pytest.raises(EvidenceError):
                eat.verify_eat(bytes(mutated), key)


# ---- the DER form of ECDSA signatures --------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    size=st.sampled_from([32, 48, 66]),
    data=st.data(),
)
def test_der_signature_is_encode_dss_signature(size: int, data: st.DataObject) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    byte = st.sampled_from([0x00, 0x00, 0x01, 0x7F, 0x80, 0xFF]) | st.integers(0, 255)
    raw = bytes(data.draw(st.lists(byte, min_size=2 * size, max_size=2 * size)))
    r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
    assert cose_verification._der_signature(raw, size) == encode_dss_signature(r, s)


# ---- the device profile's claims checked in a straight line -----------------------------------


def profile_payload() -> dict[Any, Any]:
    key = ec.derive_private_key(0x715, ec.SECP256R1()).public_key()
    claims = eat.EatClaims(
        eat_profile=eat.DEVICE_PROFILE,
        nonce=bytes(range(32)),
        ueid=b"\x01" + bytes(range(32)),
        iat=1_750_000_000,
        oemid=b"\x00\x1b\x63",
        hwmodel=b"esp32-s3",
        swname="edgetrust-fw",
        swversion=eat.Version(version="1.4.0"),
        dbgstat=eat.DebugStatus.DISABLED_PERMANENTLY,
        oemboot=True,
        cnf_key=key,
        measurements=(
            eat.Measurement(name="boot", digest_alg="sha-256", digest=b"\x01" * 32, svn=2, layer=0),
            eat.Measurement(name="model", digest_alg="sha-384", digest=b"\x02" * 48),
        ),
    )
    payload: dict[Any, Any] = cbor.loads(eat.encode_claims(claims))
    return payload


def _outcome(decode: Any) -> tuple[str, Any]:
    try:
        claims = decode()
        built = (claims, claims.cnf_key, claims.measurements)  # (builds the deferred fields)
    except ClaimError as e:
        return ("error", str(e))
    return ("ok", built)


class _IntSubclass(int):
    pass


class _EqualToSix:
    """A key equal to 6 (and hashing like it) that is no number."""

    def __eq__(self, other: object) -> bool:
        return other == 6

    def __hash__(self) -> int:
        return hash(6)


PROFILE_VALUES = st.one_of(
    VALUES,
    st.sampled_from(
        [
            eat.DEVICE_PROFILE,
            "urn:other",
            ["1.0"],
            ["1.0", 2],
            [],
            0,
            4,
            5,
            -1,
            1.5,
            b"\x00" * 16,
            b"\x00" * 3,
            {1: {1: 2, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32}},
            {3: b"kid"},
            [[60, cbor.dumps([{1: "a", 2: "sha-256", 3: b"\x00" * 32}])]],
            [[258, b"coswid"]],
        ]
    ),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.dictionaries(
        st.sampled_from(device_profile._PROFILE_KEYS), PROFILE_VALUES, max_size=3
    ),
    key_change=st.sampled_from(
        [
            "none",
            "float",
            "enum",
            "int-subclass",
            "fraction",
            "complex",
            "equal-only",
            "drop",
            "add",
            "reorder",
        ]
    ),
)
def test_profile_fast_path_agrees_with_the_general_loop(
    changes: dict[int, Any], key_change: str
) -> None:
    payload = profile_payload()
    payload.update(changes)
    odd_keys: dict[str, Any] = {
        "float": 6.0,
        "int-subclass": _IntSubclass(6),
        "fraction": fractions.Fraction(6),
        "complex": complex(6, 0),
        "equal-only": _EqualToSix(),
    }
    if key_change in odd_keys:
        payload = {odd_keys[key_change] if k == 6 else k: v for k, v in payload.items()}
    elif key_change == "enum":
        payload = {eat.Claim(k): v for k, v in payload.items()}
    elif key_change == "drop":
        del payload[271]
        payload[1] = "issuer"  # still twelve claims
    elif key_change == "add":
        payload["x-extra"] = 1
    elif key_change == "reorder":
        payload = dict(reversed(payload.items()))
    fast = _outcome(lambda: decoding._decode_claims(payload, 0))
    general = _outcome(lambda: decoding._decode_claims(cbor.FrozenMap(payload), 0))
    assert fast == general


def test_profile_fast_path_is_taken_for_device_tokens() -> None:
    payload = profile_payload()
    fast = device_profile._device_profile_claims(payload)
    assert fast is not None
    assert fast == decoding._decode_claims(cbor.FrozenMap(payload), 0)


# ---- the COSE_Sign1 envelope read without the CBOR decoder -------------------------------------


def _general_sign1(data: bytes) -> tuple[str, Any]:
    try:
        value = cbor.loads(data)
        msg = cose_decoding._sign1_from_value(value, require_tag=False, outer_tags=())
    except EvidenceError as e:
        return ("error", type(e))
    return ("ok", msg)


@st.composite
def sign1_tokens(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=600) | st.just(b"x" * 70000))
    kid = draw(st.none() | st.binary(min_size=1, max_size=4))
    token = cose.sign1(payload, DEVICE_KEY, kid=kid, tagged=draw(st.booleans()))
    edit = draw(st.sampled_from(["none", "flip", "cut", "append", "cwt"]))
    if edit == "flip" and token:
        i = draw(st.integers(0, len(token) - 1))
        token = token[:i] + bytes([token[i] ^ draw(st.integers(1, 255))]) + token[i + 1 :]
    elif edit == "cut":
        token = token[: draw(st.integers(0, len(token)))]
    elif edit == "append":
        token += draw(st.binary(min_size=1, max_size=3))
    elif edit == "cwt":
        token = b"\xd8\x3d" + token
    return token


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sign1_tokens())
def test_sign1_envelope_reads_what_the_decoder_reads(token: bytes) -> None:
    cose.decode_sign1(cose.sign1(b"p", DEVICE_KEY))  # the ES256 protected header is known
    fast = cose_envelope._sign1_envelope(token)
    if fast is not None:
        assert _general_sign1(token) == ("ok", fast)
    # and the public decoders agree with the decoder alone, whichever path they take
    try:
        public: tuple[str, Any] = ("ok", cose.decode_sign1(token))
    except EvidenceError as e:
        public = ("error", type(e))
    assert public == _general_sign1(token)


def test_sign1_envelope_is_taken_for_our_tokens() -> None:
    token = eat.make_eat(eat.EatClaims(nonce=b"n" * 8), DEVICE_KEY)
    cose.decode_sign1(token)
    assert cose_envelope._sign1_envelope(token) == cose_decoding._sign1_from_value(
        cbor.loads(token), require_tag=True, outer_tags=()
    )


@pytest.mark.parametrize("length", [0, 1, 23, 24, 255, 256, 65535, 65536, 70000])
def test_encode_bytes_heads(length: int) -> None:
    import cbor2

    data = bytes(length)
    assert cbor.encode_bytes(data) == cbor2.dumps(data) == cbor.dumps(data)
