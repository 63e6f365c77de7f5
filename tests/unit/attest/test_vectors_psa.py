"""PSA vectors (RFC 9783 Appendix A, TF-M iat-verifier), judged as their READMEs say."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from edgetrust.attest import cbor, cose, keys, psa, schemes
from edgetrust.errors import AlgorithmError, CBORError, ClaimError, NonceError, SignatureError

RFC = "psa-rfc9783"
TFM = "psa-tfm-iat-verifier"


def _read(vectors_dir: Path, folder: str, name: str) -> bytes:
    return (vectors_dir / "external" / folder / name).read_bytes()


def _key(vectors_dir: Path, folder: str, name: str) -> cose.VerificationKey:
    return keys.load_verification_key(_read(vectors_dir, folder, name))


# --- RFC 9783 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key_file", ["tfm-es-iak.pem", "tfm-es-iak.json"])
def test_rfc9783_sign1_is_valid(vectors_dir: Path, key_file: str) -> None:
    claims = psa.verify_psa(
        _read(vectors_dir, RFC, "psa-sign1.cbor"),
        _key(vectors_dir, RFC, key_file),
        expected_nonce=b"\x01" * 32,
    )
    assert claims.variant is psa.PsaVariant.RFC9783
    assert claims.profile == psa.PSA_PROFILE_TFM
    assert claims.instance_id == b"\x01" + b"\x02" * 32
    assert claims.implementation_id == b"\x00" * 32
    assert claims.client_id == 2147483647
    assert claims.security_lifecycle == 0x3000
    assert claims.lifecycle_state == "secured"
    assert claims.boot_seed == b"\x00" * 8
    assert claims.software_components == (
        psa.SoftwareComponent(
            measurement_type="PRoT", measurement_value=b"\x03" * 32, signer_id=b"\x04" * 32
        ),
    )


def test_rfc9783_sign1_through_the_scheme_registry(vectors_dir: Path) -> None:
    token = _read(vectors_dir, RFC, "psa-sign1.cbor")
    key = _key(vectors_dir, RFC, "tfm-es-iak.pem")
    verified = schemes.verify_token(
        token, key, media_type=schemes.PSA_MEDIA_TYPE, expected_nonce=b"\x01" * 32
    )
    assert verified.scheme == "psa"
    assert verified.profile == psa.PSA_PROFILE_TFM
    assert verified.claims["eat_nonce"] == "01" * 32
    assert schemes.detect_scheme(token).name == "psa"


def test_rfc9783_sign1_wrong_nonce(vectors_dir: Path) -> None:
    with pytest.raises(NonceError):
        psa.verify_psa(
            _read(vectors_dir, RFC, "psa-sign1.cbor"),
            _key(vectors_dir, RFC, "tfm-es-iak.pem"),
            expected_nonce=b"\x02" * 32,
        )


def test_rfc9783_mac0_is_valid(vectors_dir: Path) -> None:
    key = _key(vectors_dir, RFC, "tfm-hs-iak.bin")
    assert isinstance(key, cose.SymmetricKey)
    assert len(key.secret) == 64
    token = _read(vectors_dir, RFC, "psa-mac0.cbor")
    msg, _ = psa.decode_psa(token)
    assert isinstance(msg, cose.Mac0Message)
    assert msg.alg is cose.Algorithm.HMAC_256_256
    claims = psa.verify_psa(token, key)
    assert claims.profile == psa.PSA_PROFILE_TFM


def test_rfc9783_mac0_with_the_es256_key(vectors_dir: Path) -> None:
    with pytest.raises(AlgorithmError):
        psa.verify_psa(
            _read(vectors_dir, RFC, "psa-mac0.cbor"), _key(vectors_dir, RFC, "tfm-es-iak.pem")
        )


def test_rfc9783_diag_and_hex_match(vectors_dir: Path) -> None:
    for stem in ("psa-sign1", "psa-mac0"):
        hex_text = _read(vectors_dir, RFC, f"{stem}.hex").decode()
        assert bytes.fromhex("".join(hex_text.split())) == _read(vectors_dir, RFC, f"{stem}.cbor")


# --- TF-M iat-verifier ------------------------------------------------------------------------


def test_iat_is_valid_profile1(vectors_dir: Path) -> None:
    token = _read(vectors_dir, TFM, "iat.cbor")
    key = _key(vectors_dir, TFM, "key.pem")
    claims = psa.verify_psa(token, key)
    assert claims.variant is psa.PsaVariant.PROFILE1
    assert claims.client_id == 2
    assert claims.lifecycle_state == "secured"
    assert claims.software_components is not None
    assert [c.measurement_type for c in claims.software_components] == ["BL", "M1", "M2", "M3"]
    assert schemes.detect_scheme(token).name == "psa-iot-profile-1"
    verified = schemes.verify_token(token, key, media_type=schemes.PSA_PROFILE1_MEDIA_TYPE)
    assert verified.typed_claims == claims


def test_iat_with_the_alternative_key(vectors_dir: Path) -> None:
    with pytest.raises(SignatureError):
        psa.verify_psa(_read(vectors_dir, TFM, "iat.cbor"), _key(vectors_dir, TFM, "key-alt.pem"))


def test_iat_hmac_is_valid(vectors_dir: Path) -> None:
    claims = psa.verify_psa(
        _read(vectors_dir, TFM, "iat-hmac.cbor"), _key(vectors_dir, TFM, "hmac.key")
    )
    assert claims.variant is psa.PsaVariant.PROFILE1


def _lenient_es256_check(vectors_dir: Path, token: bytes) -> None:
    """What a lenient verifier would do (assume ES256 when alg is missing) -- for the record."""
    public = _key(vectors_dir, TFM, "key.pem")
    assert isinstance(public, ec.EllipticCurvePublicKey)
    msg = cose.decode_sign1(token)
    r = int.from_bytes(msg.signature[:32], "big")
    s = int.from_bytes(msg.signature[32:], "big")
    public.verify(encode_dss_signature(r, s), cose.sig_structure(msg), ec.ECDSA(hashes.SHA256()))


def test_psa_2_0_0_without_alg_is_invalid(vectors_dir: Path) -> None:
    token = _read(vectors_dir, TFM, "psa-2_0_0_sign1-token.cbor")
    assert cose.decode_sign1(token).protected_bytes == b""
    with pytest.raises(AlgorithmError, match="no algorithm"):
        psa.verify_psa(token, _key(vectors_dir, TFM, "key.pem"))
    # only the missing alg is wrong: a lenient ES256 check passes and the claims are well formed
    _lenient_es256_check(vectors_dir, token)
    _, claims = psa.decode_psa(token)
    assert claims.profile == psa.PSA_PROFILE_2_0_0


def test_missing_claim_is_invalid(vectors_dir: Path) -> None:
    token = _read(vectors_dir, TFM, "missing-claim.cbor")
    with pytest.raises(AlgorithmError, match="no algorithm"):
        psa.verify_psa(token, _key(vectors_dir, TFM, "key.pem"))
    msg = cose.decode_sign1(token)
    with pytest.raises(ClaimError, match="lacks mandatory claim"):
        psa.decode_psa_claims(cbor.loads(msg.payload or b"", expect=dict))


def test_invalid_profile_id_is_invalid(vectors_dir: Path) -> None:
    token = _read(vectors_dir, TFM, "invalid-profile-id.cbor")
    with pytest.raises(AlgorithmError, match="no algorithm"):
        psa.verify_psa(token, _key(vectors_dir, TFM, "key.pem"))
    msg = cose.decode_sign1(token)
    payload = cbor.loads(msg.payload or b"", expect=dict)
    assert isinstance(payload[psa.PsaProfile1Claim.PROFILE], bytes)
    with pytest.raises(ClaimError, match="profile must be text"):
        psa.decode_psa_claims(payload)


def test_malformed_is_invalid(vectors_dir: Path) -> None:
    token = _read(vectors_dir, TFM, "malformed.cbor")
    assert token[-1:] == b"\n"  # one byte after the COSE structure
    with pytest.raises(CBORError, match="trailing"):
        psa.verify_psa(token, _key(vectors_dir, TFM, "key.pem"))
    # the stated reason holds too: without the stray byte, even a lenient ES256 check fails
    with pytest.raises(InvalidSignature):
        _lenient_es256_check(vectors_dir, token[:-1])
