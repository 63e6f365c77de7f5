"""RFC 8392 Appendix A vectors, judged as tests/vectors/external/cwt-rfc8392/README.md says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgetrust.attest import cbor, cose, eat, keys
from edgetrust.errors import FreshnessError, SignatureError

AT = datetime(
    2015, 10, 5, tzinfo=UTC
)  # between nbf/iat (2015-10-04T07:49Z) and exp (2015-10-05T17:09Z)


def _read(vectors_dir: Path, name: str) -> bytes:
    return (vectors_dir / "external" / "cwt-rfc8392" / name).read_bytes()


def test_hex_files_match_the_binary_files(vectors_dir: Path) -> None:
    for stem in (
        "rfc8392-a2-2-cose-key-256bit-symmetric",
        "rfc8392-a2-3-cose-key-es256",
        "rfc8392-a3-signed-cwt",
        "rfc8392-a4-maced-cwt",
    ):
        hex_text = _read(vectors_dir, f"{stem}.hex").decode()
        assert bytes.fromhex("".join(hex_text.split())) == _read(vectors_dir, f"{stem}.cbor")


def test_a3_signed_cwt_is_valid_at_a_fixed_time(vectors_dir: Path) -> None:
    key = keys.load_verification_key(_read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor"))
    claims = eat.verify_eat(_read(vectors_dir, "rfc8392-a3-signed-cwt.cbor"), key, now=AT)
    assert claims.iss == "coap://as.example.com"
    assert claims.sub == "erikw"
    assert claims.aud == "coap://light.example.com"
    assert claims.exp == 1444064944
    assert claims.nbf == claims.iat == 1443944944
    assert claims.cti == bytes.fromhex("0b71")


def test_a3_token_is_a_tagged_sign1_and_also_reads_inside_tag_61(vectors_dir: Path) -> None:
    token = _read(vectors_dir, "rfc8392-a3-signed-cwt.cbor")
    assert cbor.loads(token).tag == cose.COSE_SIGN1_TAG
    key = keys.load_verification_key(_read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor"))
    wrapped = cbor.dumps(cbor.Tag(eat.CWT_TAG, cbor.loads(token)))  # RFC 8392 section 6
    assert eat.verify_eat(wrapped, key, now=AT) == eat.verify_eat(token, key, now=AT)


def test_a3_expired_later(vectors_dir: Path) -> None:
    key = keys.load_verification_key(_read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor"))
    with pytest.raises(FreshnessError, match="expired"):
        eat.verify_eat(
            _read(vectors_dir, "rfc8392-a3-signed-cwt.cbor"),
            key,
            now=datetime(2016, 1, 1, tzinfo=UTC),
        )


def test_a3_not_yet_valid_earlier(vectors_dir: Path) -> None:
    key = keys.load_verification_key(_read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor"))
    with pytest.raises(FreshnessError, match="not valid before"):
        eat.verify_eat(
            _read(vectors_dir, "rfc8392-a3-signed-cwt.cbor"),
            key,
            now=datetime(2015, 1, 1, tzinfo=UTC),
        )


def test_a3_without_a_time_fails_closed(vectors_dir: Path) -> None:
    key = keys.load_verification_key(_read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor"))
    with pytest.raises(FreshnessError, match="no time"):
        eat.verify_eat(_read(vectors_dir, "rfc8392-a3-signed-cwt.cbor"), key)


def test_a3_one_signature_byte_flipped(vectors_dir: Path) -> None:
    key = keys.load_verification_key(_read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor"))
    token = bytearray(_read(vectors_dir, "rfc8392-a3-signed-cwt.cbor"))
    token[-1] ^= 0x01  # the last byte is inside the signature
    with pytest.raises(SignatureError):
        eat.verify_eat(bytes(token), key, now=AT)


def test_a3_key_file_holds_a_usable_signing_key(vectors_dir: Path) -> None:
    # the A.2.3 COSE_Key carries d: it loads as a signing key whose public half is the verifier
    data = _read(vectors_dir, "rfc8392-a2-3-cose-key-es256.cbor")
    signing = keys.load_signing_key(data)
    token = cose.sign1(b"x", signing)  # type: ignore[arg-type]
    cose.verify_sign1(token, keys.load_verification_key(data))


def test_a4_maced_cwt_is_valid_despite_the_keys_alg_10(vectors_dir: Path) -> None:
    key_bytes = _read(vectors_dir, "rfc8392-a2-2-cose-key-256bit-symmetric.cbor")
    assert cbor.loads(key_bytes)[3] == 10  # the COSE_Key says AES-CCM ...
    key = keys.load_verification_key(key_bytes)
    token = _read(vectors_dir, "rfc8392-a4-maced-cwt.cbor")
    msg, _ = eat.decode_eat(token)
    assert isinstance(msg, cose.Mac0Message)
    assert msg.alg is cose.Algorithm.HMAC_256_64  # ... the token uses HMAC 256/64
    claims = eat.verify_eat(token, key, now=AT)
    assert claims.sub == "erikw"


def test_a4_wrong_key(vectors_dir: Path) -> None:
    token = _read(vectors_dir, "rfc8392-a4-maced-cwt.cbor")
    with pytest.raises(SignatureError):
        eat.verify_eat(token, cose.SymmetricKey(secret=b"\x00" * 32), now=AT)
