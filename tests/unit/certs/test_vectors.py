"""External vectors judged as their READMEs say: Project Cerberus (TCG DICE) and Open DICE."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store

from edgetrust.attest import dice
from edgetrust.certs import path_validator
from edgetrust.certs.chain import dice_extensions, validate_chain
from edgetrust.certs.dice_ext import OPEN_DICE_INPUT_OID, TCB_INFO_OID, OpenDiceMode
from edgetrust.certs.keys import verify_certificate_signature
from edgetrust.certs.loading import load_certificate, load_public_key
from edgetrust.errors import BasicConstraintsError, SignatureError

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "external"
CERBERUS = VECTORS / "dice-cerberus"
OPEN_DICE = VECTORS / "dice-open-dice-kat"
AT = datetime(2024, 1, 1, tzinfo=UTC)
SHA256 = "2.16.840.1.101.3.4.2.1"
FWID_DIGEST = bytes.fromhex("8869de579dd0e905e0a71124575594f50a03d3d9cdf16e9a3f9d6c60c0324b54")
CA_VECTORS = [
    "X509_CERTCA_ECC_CA_TCBINFO.der",
    "X509_CERTCA_ECC_CA_TCBINFO_CRIT.der",
    "X509_CERTCA_ECC_CA_UEID_SVN.der",
]


def _cert(name: str, directory: Path = CERBERUS) -> x509.Certificate:
    return load_certificate((directory / name).read_bytes())


@pytest.fixture(scope="module")
def root() -> x509.Certificate:
    return _cert("X509_CERTSS_ECC_CA.der")


# --------------------------------------------------------------------------------------------
# Project Cerberus
# --------------------------------------------------------------------------------------------


def test_cerberus_signer_key_is_the_roots(root: x509.Certificate) -> None:
    signer = load_public_key((CERBERUS / "ECC_PUBKEY.pem").read_bytes())
    assert root.public_key() == signer
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0


@pytest.mark.parametrize("name", [*CA_VECTORS, "X509_CERTCA_ECC_EE_TCBINFO.der"])
def test_cerberus_signatures_verify_with_the_signer_key(name: str) -> None:
    signer = load_public_key((CERBERUS / "ECC_PUBKEY.pem").read_bytes())
    verify_certificate_signature(_cert(name), signer)  # raises on failure


@pytest.mark.parametrize("name", CA_VECTORS)
def test_cerberus_ca_under_pathlen_zero_root_is_refused(name: str, root: x509.Certificate) -> None:
    certificate = _cert(name)
    # cryptography's RFC 5280 validator alone accepts the path (a CA leaf is not counted) ...
    policy = PolicyBuilder().store(Store([root])).time(AT)
    verifier = policy.extension_policies(
        ca_policy=path_validator.CA_POLICY, ee_policy=path_validator.EE_POLICY
    ).build_client_verifier()
    assert verifier.verify(certificate, []).chain == [certificate, root]
    # ... the DICE-strict rules refuse it, after the signature checked out.
    with pytest.raises(BasicConstraintsError, match="CN=Test has pathLen 0 but 1 CA"):
        validate_chain([certificate], [root], AT)
    # A bare-key anchor carries no pathLen: under ECC_PUBKEY.pem alone the path is fine.
    signer = load_public_key((CERBERUS / "ECC_PUBKEY.pem").read_bytes())
    assert validate_chain([certificate], [signer], AT).anchor == signer


def test_cerberus_tampered_ca_is_a_signature_error_not_a_constraint_error(
    root: x509.Certificate,
) -> None:
    der = bytearray((CERBERUS / "X509_CERTCA_ECC_CA_TCBINFO.der").read_bytes())
    der[-5] ^= 0x01  # inside the signature value
    with pytest.raises(SignatureError):
        validate_chain([load_certificate(bytes(der))], [root], AT)


def test_cerberus_end_entity_validates(root: x509.Certificate) -> None:
    leaf = _cert("X509_CERTCA_ECC_EE_TCBINFO.der")
    result = validate_chain([leaf], [root], AT)
    assert result.validator == "cryptography"
    (entry,) = result.entries
    assert entry.tcb_info[0].version == "1.2.3.4"
    signer = load_public_key((CERBERUS / "ECC_PUBKEY.pem").read_bytes())
    assert validate_chain([leaf], [signer], AT).anchor == signer


@pytest.mark.parametrize(
    ("name", "svn", "critical"),
    [
        ("X509_CERTCA_ECC_CA_TCBINFO.der", 0x12345678, False),
        ("X509_CERTCA_ECC_CA_TCBINFO_CRIT.der", 0x12345678, True),
        ("X509_CERTCA_ECC_CA_UEID_SVN.der", 0, False),
        ("X509_CERTCA_ECC_EE_TCBINFO.der", 0x12345678, False),
    ],
)
def test_cerberus_tcb_info_values(name: str, svn: int, critical: bool) -> None:
    certificate = _cert(name)
    assert certificate.extensions.get_extension_for_oid(TCB_INFO_OID).critical is critical
    (tcb,) = dice_extensions(certificate).tcb_info
    assert tcb.version == "1.2.3.4"
    assert tcb.svn == svn
    assert tcb.layer == 0
    assert tcb.vendor is None
    assert tcb.model is None
    assert tcb.flags is None
    assert tcb.fwids is not None
    (fwid,) = tcb.fwids
    assert fwid.hash_alg == SHA256
    assert fwid.hash_name == "sha256"
    assert fwid.digest == FWID_DIGEST


def test_cerberus_ueid() -> None:
    ueid = dice_extensions(_cert("X509_CERTCA_ECC_CA_UEID_SVN.der")).ueid
    assert ueid is not None
    assert ueid.value == bytes.fromhex("1122334455667788")
    assert dice_extensions(_cert("X509_CERTCA_ECC_CA_TCBINFO.der")).ueid is None


# --------------------------------------------------------------------------------------------
# Open DICE X.509 CDI certificate (zero input)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_dice_cert() -> x509.Certificate:
    return _cert("x509_ed25519_cert_zero_input.der", OPEN_DICE)


def test_open_dice_extension_decodes(open_dice_cert: x509.Certificate) -> None:
    extension = open_dice_cert.extensions.get_extension_for_oid(OPEN_DICE_INPUT_OID)
    assert extension.critical
    value = dice_extensions(open_dice_cert).open_dice
    assert value is not None
    assert value.code_hash == bytes(64)
    assert value.code_descriptor is None
    assert value.configuration_hash is None
    assert value.configuration_descriptor == bytes(64)  # inline config goes here in open-dice
    assert value.authority_hash == bytes(64)
    assert value.authority_descriptor is None
    assert value.mode is OpenDiceMode.NOT_CONFIGURED
    assert value.profile_name is None
    assert value.to_der() == extension.value.value  # byte-exact re-encoding (ENUMERATED mode)


def test_open_dice_certificate_validates_link_by_link(open_dice_cert: x509.Certificate) -> None:
    # The issuer key is derived from the current CDI (0^32) by our Open DICE implementation.
    issuer_key = dice.derive_private_key(bytes(32), dice.KeyAlg.ED25519).public_key()
    result = validate_chain([open_dice_cert], [issuer_key], datetime(2025, 1, 1, tzinfo=UTC))
    assert result.validator == "edgetrust"
    assert result.anchor == issuer_key
    assert result.entries[0].open_dice is not None
    # ... and nothing else signs it.
    other = dice.derive_private_key(bytes([1]) * 32, dice.KeyAlg.ED25519).public_key()
    with pytest.raises(Exception, match="no trust anchor issued") as caught:
        validate_chain([open_dice_cert], [other], datetime(2025, 1, 1, tzinfo=UTC))
    assert type(caught.value).__name__ == "UntrustedAnchorError"


def test_open_dice_serial_is_the_subject_id(open_dice_cert: x509.Certificate) -> None:
    subject_id = dice.dice_id(open_dice_cert.public_key())  # type: ignore[arg-type]
    assert open_dice_cert.serial_number == int.from_bytes(subject_id, "big")
