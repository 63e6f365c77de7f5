"""Open DICE derivation: known answers from google/open-dice, properties, and input rejection."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import cbor2  # tests only: the package imports cbor2 solely in attest/cbor.py
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.attest.dice import (
    ASYM_SALT,
    ID_SALT,
    ConfigType,
    DiceMode,
    InputValues,
    KeyAlg,
    derive_cdis,
    derive_private_key,
    dice_id,
    hash_input,
    main_flow,
    open_dice_public_key,
    public_key_bytes,
)
from edgetrust.errors import ConfigError, DiceInputError

KAT = Path(__file__).resolve().parents[2] / "vectors" / "external" / "dice-open-dice-kat"
ZERO_CDI = bytes(32)
Z64 = bytes(64)

# Open DICE CWT claim keys (spec, "CBOR CDI Certificates").
CODE_HASH = -4670545
CONFIG_DESC = -4670548
AUTHORITY_HASH = -4670549
MODE = -4670551
SUBJECT_PUBLIC_KEY = -4670552
KEY_USAGE = -4670553
OPEN_DICE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.11129.2.1.24")


def _zero_inputs(**overrides: Any) -> InputValues:
    values: dict[str, Any] = {
        "code_hash": Z64,
        "config_value": Z64,
        "authority_hash": Z64,
        "mode": DiceMode.NOT_CONFIGURED,
        "hidden": Z64,
    }
    values.update(overrides)
    return InputValues(**values)


def _ed25519(cdi: bytes) -> ed25519.Ed25519PrivateKey:
    key = derive_private_key(cdi, KeyAlg.ED25519)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@pytest.fixture(scope="module")
def next_cdis() -> tuple[bytes, bytes]:
    return derive_cdis(ZERO_CDI, ZERO_CDI, _zero_inputs())


# ---------------------------------------------------------------------------------------------
# Known answers
# ---------------------------------------------------------------------------------------------


def test_salts_are_the_spec_constants() -> None:
    assert len(ASYM_SALT) == len(ID_SALT) == 64
    assert ASYM_SALT[:4].hex() == "63b6a04d"
    assert ID_SALT[-4:].hex() == "1c7b29ea"


def test_zero_input_next_cdis_match_open_dice(next_cdis: tuple[bytes, bytes]) -> None:
    attest, seal = next_cdis
    assert attest == (KAT / "cdi_attest_zero_input.bin").read_bytes()
    assert seal == (KAT / "cdi_seal_zero_input.bin").read_bytes()


def test_x509_cert_subject_key_serial_names_and_signature(next_cdis: tuple[bytes, bytes]) -> None:
    cert = x509.load_der_x509_certificate((KAT / "x509_ed25519_cert_zero_input.der").read_bytes())
    subject = _ed25519(next_cdis[0])
    authority = _ed25519(ZERO_CDI)

    cert_key = cert.public_key()
    assert isinstance(cert_key, ed25519.Ed25519PublicKey)
    assert public_key_bytes(cert_key) == public_key_bytes(subject)
    assert public_key_bytes(subject).hex().startswith("0d14e5de")

    subject_id, authority_id = dice_id(subject), dice_id(authority)
    assert cert.serial_number == int.from_bytes(subject_id, "big")
    assert subject_id.hex() == "67c22a8859062b986818e8e72b0bcd9f59349c89"
    assert authority_id.hex() == "7a06eee41b789f4863d86b8778b1a201a6fedd56"
    # Names are SERIALNUMBER=<hex ID> (spec, "X.509 CDI Certificates").
    subj_sn = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    iss_sn = cert.issuer.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    assert [a.value for a in subj_sn] == [subject_id.hex()]
    assert [a.value for a in iss_sn] == [authority_id.hex()]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert ski.digest == subject_id
    assert aki.key_identifier == authority_id
    assert cert.extensions.get_extension_for_oid(OPEN_DICE_OID).critical

    authority.public_key().verify(cert.signature, cert.tbs_certificate_bytes)
    # ... and the check is not vacuous: the subject key does not verify it.
    with pytest.raises(InvalidSignature):
        subject.public_key().verify(cert.signature, cert.tbs_certificate_bytes)


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    # RFC 9052 section 4.4: ["Signature1", body_protected, external_aad, payload].
    return cbor2.dumps(["Signature1", protected, b"", payload])


def _decode_cbor_cert(name: str) -> tuple[bytes, dict[Any, Any], bytes, bytes]:
    message = cbor2.loads((KAT / name).read_bytes())
    assert isinstance(message, list)  # untagged COSE_Sign1
    assert len(message) == 4
    protected, unprotected, payload, signature = message
    assert unprotected == {}
    return protected, cbor2.loads(payload), payload, signature


def _check_cwt_inputs(claims: dict[Any, Any]) -> None:
    assert claims[CODE_HASH] == Z64
    assert claims[CONFIG_DESC] == Z64
    assert claims[AUTHORITY_HASH] == Z64
    assert claims[MODE] == b"\x00"
    assert claims[KEY_USAGE] == b"\x20"  # keyCertSign


def test_cbor_ed25519_cert(next_cdis: tuple[bytes, bytes]) -> None:
    protected, claims, payload, signature = _decode_cbor_cert("cbor_ed25519_cert_zero_input.cbor")
    assert cbor2.loads(protected) == {1: -8}  # EdDSA
    subject = _ed25519(next_cdis[0])
    authority = _ed25519(ZERO_CDI)

    cose_key = cbor2.loads(claims[SUBJECT_PUBLIC_KEY])
    assert cose_key[1] == 1  # kty OKP
    assert cose_key[-1] == 6  # crv Ed25519
    assert cose_key[-2] == public_key_bytes(subject)
    assert claims[1] == dice_id(authority).hex()  # iss
    assert claims[2] == dice_id(subject).hex()  # sub
    _check_cwt_inputs(claims)

    tbs = _sig_structure(protected, payload)
    authority.public_key().verify(signature, tbs)
    with pytest.raises(InvalidSignature):
        authority.public_key().verify(signature, tbs + b"\x00")


def test_cbor_p256_cert_proves_deterministic_p256_derivation(
    next_cdis: tuple[bytes, bytes],
) -> None:
    protected, claims, payload, signature = _decode_cbor_cert("cbor_p256_cert_zero_input.cbor")
    assert cbor2.loads(protected) == {1: -7}  # ES256
    subject = derive_private_key(next_cdis[0], KeyAlg.P256)
    authority = derive_private_key(ZERO_CDI, KeyAlg.P256)
    assert isinstance(subject, ec.EllipticCurvePrivateKey)
    assert isinstance(authority, ec.EllipticCurvePrivateKey)

    cose_key = cbor2.loads(claims[SUBJECT_PUBLIC_KEY])
    assert cose_key[1] == 2  # kty EC2
    assert cose_key[-1] == 1  # crv P-256
    sec1 = public_key_bytes(subject)
    assert sec1 == b"\x04" + cose_key[-2] + cose_key[-3]
    assert open_dice_public_key(subject) == cose_key[-2] + cose_key[-3]
    # IDs are over Open DICE's x||y encoding; the SEC1 form gives the same ID.
    assert claims[2] == dice_id(subject).hex() == "2e75b6e7230c20f2960bde4acf1288d4ab665b9b"
    assert dice_id(sec1) == dice_id(sec1[1:]) == dice_id(subject)
    assert claims[1] == dice_id(authority).hex() == "672d0053ae4513fbb3bac8209daeb3e8897681cd"
    _check_cwt_inputs(claims)

    assert len(signature) == 64  # COSE ECDSA signature: r || s
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    tbs = _sig_structure(protected, payload)
    authority.public_key().verify(der, tbs, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        subject.public_key().verify(der, tbs, ec.ECDSA(hashes.SHA256()))


def test_p256_is_not_the_naive_integer_derivation(next_cdis: tuple[bytes, bytes]) -> None:
    # The naive reading of the seed as the scalar gives a different key: the KAT above
    # is what pins Open DICE's HMAC-DRBG derivation.
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    seed = HKDF(hashes.SHA512(), 32, ASYM_SALT, b"Key Pair").derive(next_cdis[0])
    naive = ec.derive_private_key(int.from_bytes(seed, "big"), ec.SECP256R1())
    assert public_key_bytes(naive) != public_key_bytes(derive_private_key(next_cdis[0], "p256"))  # type: ignore[arg-type]


def test_main_flow_matches_the_parts(next_cdis: tuple[bytes, bytes]) -> None:
    result = main_flow(ZERO_CDI, ZERO_CDI, _zero_inputs(), KeyAlg.ED25519)
    assert (result.cdi_attest, result.cdi_seal) == next_cdis
    assert result.subject_id.hex() == "67c22a8859062b986818e8e72b0bcd9f59349c89"
    assert result.authority_id.hex() == "7a06eee41b789f4863d86b8778b1a201a6fedd56"
    assert result.subject_public_key == public_key_bytes(result.subject_key)


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------


def test_descriptor_config_is_hashed_into_the_config_input() -> None:
    descriptor = b'{"component":"firmware","version":"1.2.3"}'
    by_descriptor = _zero_inputs(
        config_type=ConfigType.DESCRIPTOR, config_value=None, config_descriptor=descriptor
    )
    inline = _zero_inputs(config_value=hashlib.sha512(descriptor).digest())
    assert by_descriptor.config_input == inline.config_input
    assert derive_cdis(ZERO_CDI, ZERO_CDI, by_descriptor) == derive_cdis(ZERO_CDI, ZERO_CDI, inline)


def test_config_type_accepts_its_string_names() -> None:
    values = _zero_inputs(config_type="inline")
    assert values.config_type is ConfigType.INLINE


def test_mode_int_is_normalised() -> None:
    assert _zero_inputs(mode=2).mode is DiceMode.DEBUG


@pytest.mark.parametrize(
    "change",
    [
        {"code_hash": b"\x01" * 64},
        {"config_value": b"\x01" * 64},
        {"authority_hash": b"\x01" * 64},
        {"mode": DiceMode.NORMAL},
        {"hidden": b"\x01" * 64},
    ],
    ids=["code", "config", "authority", "mode", "hidden"],
)
def test_every_input_changes_cdi_attest(change: dict[str, Any]) -> None:
    base = derive_cdis(ZERO_CDI, ZERO_CDI, _zero_inputs())
    changed = derive_cdis(ZERO_CDI, ZERO_CDI, _zero_inputs(**change))
    assert changed[0] != base[0]
    # The sealing CDI follows only the stable inputs: authority, mode, hidden.
    stable = next(iter(change)) in {"authority_hash", "mode", "hidden"}
    assert (changed[1] != base[1]) is stable


def test_uds_of_64_bytes_is_accepted() -> None:
    uds = bytes(range(64))
    attest, seal = derive_cdis(uds, uds, _zero_inputs())
    assert len(attest) == len(seal) == 32
    assert derive_private_key(uds, KeyAlg.P256) is not None


def test_hash_input_is_sha512() -> None:
    assert hash_input(b"abc") == hashlib.sha512(b"abc").digest()


@settings(max_examples=25, deadline=None)
@given(cdi=st.binary(min_size=32, max_size=32), alg=st.sampled_from(list(KeyAlg)))
def test_keys_are_deterministic_and_ids_positive(cdi: bytes, alg: KeyAlg) -> None:
    first = derive_private_key(cdi, alg)
    second = derive_private_key(cdi, alg)
    assert public_key_bytes(first) == public_key_bytes(second)
    size = 32 if alg is KeyAlg.ED25519 else 65
    assert len(public_key_bytes(first)) == size
    ident = dice_id(first)
    assert len(ident) == 20
    assert ident[0] & 0x80 == 0


# ---------------------------------------------------------------------------------------------
# Rejections: every one a DiceInputError (a ConfigError), never a raw ValueError
# ---------------------------------------------------------------------------------------------


def test_dice_input_error_is_a_config_error() -> None:
    assert issubclass(DiceInputError, ConfigError)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("code_hash", b"\x00" * 32, "code_hash must be 64 bytes, got 32"),
        ("authority_hash", b"\x00" * 65, "authority_hash must be 64 bytes, got 65"),
        ("hidden", b"", "hidden must be 64 bytes, got 0"),
        ("config_value", b"\x00" * 63, "config_value must be 64 bytes, got 63"),
        ("code_hash", "00" * 64, "code_hash must be bytes, not str"),
    ],
)
def test_rejects_wrong_input_sizes_and_types(field: str, value: object, message: str) -> None:
    with pytest.raises(DiceInputError, match=message):
        _zero_inputs(**{field: value})


def test_rejects_unknown_mode() -> None:
    with pytest.raises(DiceInputError, match=r"mode must be 0\.\.3, got 4"):
        _zero_inputs(mode=4)


def test_rejects_non_integer_mode() -> None:
    with pytest.raises(DiceInputError, match="mode must be a DiceMode"):
        _zero_inputs(mode="normal")


def test_rejects_boolean_mode() -> None:
    with pytest.raises(DiceInputError, match="mode must be a DiceMode"):
        _zero_inputs(mode=True)


def test_rejects_unknown_config_type() -> None:
    with pytest.raises(DiceInputError, match="config_type must be 'inline' or 'descriptor'"):
        _zero_inputs(config_type="hash")


def test_rejects_inline_config_without_value() -> None:
    with pytest.raises(DiceInputError, match="inline configuration needs config_value"):
        _zero_inputs(config_value=None)


def test_rejects_inline_config_with_descriptor() -> None:
    with pytest.raises(DiceInputError, match="config_descriptor given with an inline"):
        _zero_inputs(config_descriptor=b"x")


def test_rejects_descriptor_config_without_descriptor() -> None:
    with pytest.raises(DiceInputError, match="descriptor configuration needs config_descriptor"):
        _zero_inputs(config_type=ConfigType.DESCRIPTOR, config_value=None)


def test_rejects_descriptor_config_with_inline_value() -> None:
    with pytest.raises(DiceInputError, match="config_value given with a descriptor"):
        _zero_inputs(config_type=ConfigType.DESCRIPTOR, config_descriptor=b"x")


def test_rejects_descriptor_that_is_not_bytes() -> None:
    with pytest.raises(DiceInputError, match="config_descriptor must be bytes"):
        _zero_inputs(config_type=ConfigType.DESCRIPTOR, config_value=None, config_descriptor="x")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 48, 65])
def test_derive_cdis_rejects_wrong_cdi_size(size: int) -> None:
    with pytest.raises(DiceInputError, match=f"cdi_attest must be 32 or 64 bytes, got {size}"):
        derive_cdis(bytes(size), ZERO_CDI, _zero_inputs())
    with pytest.raises(DiceInputError, match=f"cdi_seal must be 32 or 64 bytes, got {size}"):
        derive_cdis(ZERO_CDI, bytes(size), _zero_inputs())


def test_derive_cdis_rejects_non_bytes_cdi() -> None:
    with pytest.raises(DiceInputError, match="cdi_attest must be bytes, not str"):
        derive_cdis("00" * 32, ZERO_CDI, _zero_inputs())  # type: ignore[arg-type]


def test_derive_cdis_rejects_non_inputvalues() -> None:
    with pytest.raises(DiceInputError, match="inputs must be InputValues"):
        derive_cdis(ZERO_CDI, ZERO_CDI, {"code_hash": Z64})  # type: ignore[arg-type]


def test_derive_private_key_rejects_wrong_cdi_size() -> None:
    with pytest.raises(DiceInputError, match="cdi_attest must be 32 or 64 bytes, got 20"):
        derive_private_key(bytes(20), KeyAlg.ED25519)


def test_derive_private_key_rejects_unknown_algorithm() -> None:
    with pytest.raises(DiceInputError, match="unsupported key algorithm 'p384'"):
        derive_private_key(ZERO_CDI, "p384")  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, 31, 33, 63, 66])
def test_dice_id_rejects_wrong_key_size(size: int) -> None:
    with pytest.raises(DiceInputError, match=f"got {size}"):
        dice_id(bytes(size))


def test_dice_id_rejects_65_bytes_that_are_not_sec1_uncompressed() -> None:
    with pytest.raises(DiceInputError, match="got 65"):
        dice_id(b"\x05" + bytes(64))


def test_public_key_bytes_rejects_other_curves() -> None:
    p384 = ec.derive_private_key(7, ec.SECP384R1())
    with pytest.raises(DiceInputError, match="only P-256 ECDSA keys"):
        public_key_bytes(p384)


def test_public_key_bytes_rejects_non_keys() -> None:
    with pytest.raises(DiceInputError, match="not an Ed25519 or P-256 key: str"):
        public_key_bytes("key")  # type: ignore[arg-type]
