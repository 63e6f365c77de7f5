"""validate_chain: a generated 4-layer DICE chain, and one named negative case per rejection
reason, each on the P-256 path (cryptography's validator) and the Ed25519 path (link by link)."""

from __future__ import annotations

import contextlib
import random
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import VerificationError
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.certs import path_validator
from edgetrust.certs.chain import order_chain, validate_chain
from edgetrust.certs.dice_ext import TCB_INFO_OID, UEID_OID
from edgetrust.certs.loading import load_certificate
from edgetrust.errors import (
    AlgorithmError,
    ASN1Error,
    BasicConstraintsError,
    CertificateError,
    ConfigError,
    DiceExtensionError,
    Error,
    ExpiredError,
    NameChainingError,
    NotYetValidError,
    SignatureError,
    UnknownCriticalExtensionError,
    UntrustedAnchorError,
    ValidityError,
)
from tests.unit.certs import factory
from tests.unit.certs.factory import NOW, UEID, build, raw_extension, specs

KINDS = ["p256", "ed25519"]
VALIDATOR = {"p256": "cryptography", "p384": "cryptography", "ed25519": "edgetrust"}


@pytest.fixture(scope="module", params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def good(kind: str) -> factory.Chain:
    return build(kind)


# --------------------------------------------------------------------------------------------
# Valid chains
# --------------------------------------------------------------------------------------------


def test_four_layer_chain_validates(kind: str, good: factory.Chain) -> None:
    result = validate_chain(good.certs, [good.root], NOW)
    assert result.validator == VALIDATOR[kind]
    assert [e.subject for e in result] == ["CN=Alias L2", "CN=Alias L1", "CN=DeviceID"]
    assert result.leaf == good.leaf
    assert result.leaf_public_key == good.keys[0].public_key()
    assert result.anchor == good.root
    assert result.ueid is not None
    assert result.ueid.value == UEID
    alias2, alias1, device = result.entries
    assert [t.version for t in alias2.tcb_info] == ["2.1.0"]
    assert alias2.tcb_info[0].svn == 7
    assert alias1.tcb_info[0].layer == 1
    assert device.tcb_info == ()
    assert device.ueid is not None
    assert alias1.open_dice is None
    assert alias1.multi_tcb_info is None
    entry = alias2.to_dict()
    assert set(entry) == {"subject", "issuer", "tcb_info", "ueid", "open_dice"}
    assert entry["tcb_info"][0]["fwids"][0]["hash_alg"] == "sha256"


def test_any_order_with_the_root_included(good: factory.Chain) -> None:
    shuffled = [*good.certs, good.root, good.certs[1]]  # root and a duplicate thrown in
    random.Random(7).shuffle(shuffled)
    result = validate_chain(shuffled, [good.root], NOW)
    assert result.certificates == tuple(good.certs)


def test_bare_public_key_anchor(kind: str, good: factory.Chain) -> None:
    root_key = good.root_key.public_key()
    result = validate_chain(good.certs, [root_key], NOW)
    assert result.anchor == root_key
    assert result.validator == VALIDATOR[kind]


def test_root_in_the_bundle_with_its_key_as_anchor(kind: str, good: factory.Chain) -> None:
    result = validate_chain([good.root, *good.certs], [good.root_key.public_key()], NOW)
    assert result.certificates == tuple(good.certs)
    assert result.anchor == good.root  # the key's own certificate, constraints and all


def test_bundle_going_on_above_a_trusted_intermediate(kind: str, good: factory.Chain) -> None:
    device_id = good.certs[2]  # trust the DeviceID certificate itself; the bundle has the root
    result = validate_chain([*good.certs, good.root], [device_id], NOW)
    assert result.certificates == tuple(good.certs[:2])
    assert result.anchor == device_id


def test_firmware_extensions_are_shared_across_devices_and_ueids_are_not_cached() -> None:
    # Two devices on the same firmware: the alias certificates' TcbInfo bytes are equal, so
    # their decoded values come from the (firmware-level) cache; UEIDs are decoded each time.
    first, second = build("p256"), build("p256")
    one = validate_chain(first.certs, [first.root], NOW)
    two = validate_chain(second.certs, [second.root], NOW)
    assert one.entries[0].dice is two.entries[0].dice
    assert one.entries[1].tcb_info[0] is two.entries[1].tcb_info[0]
    again = validate_chain(first.certs, [first.root], NOW)
    assert again.entries[2].ueid == one.entries[2].ueid
    assert again.entries[2].dice is not one.entries[2].dice


def test_p384_chain_validates() -> None:
    p384 = build("p384")
    assert validate_chain(p384.certs, [p384.root], NOW).validator == "cryptography"


def test_the_right_anchor_is_chosen_among_several(good: factory.Chain) -> None:
    other = build("p256")
    result = validate_chain(good.certs, [other.root, other.root_key.public_key(), good.root], NOW)
    assert result.anchor == good.root


def test_pathlen_with_room_for_a_ca_leaf_passes(kind: str) -> None:
    layers = specs()
    layers["alias2"].ca = True
    layers["alias2"].cert_sign = True
    layers["deviceid"].path_length = 2
    chain = build(kind, layers)
    assert len(validate_chain(chain.certs, [chain.root], NOW)) == 3


# --------------------------------------------------------------------------------------------
# One negative case per rejection reason (both paths)
# --------------------------------------------------------------------------------------------


def test_untrusted_anchor(good: factory.Chain) -> None:
    stranger = build("p256")
    with pytest.raises(UntrustedAnchorError, match="no trust anchor issued CN=DeviceID"):
        validate_chain(good.certs, [build("p256", _renamed_root()).root], NOW)
    with pytest.raises(UntrustedAnchorError):
        validate_chain(good.certs, [stranger.root_key.public_key()], NOW)


def test_untrusted_self_signed_root_in_the_bundle(good: factory.Chain) -> None:
    with pytest.raises(UntrustedAnchorError, match="self-signed"):
        validate_chain([*good.certs, good.root], [build("p256", _renamed_root()).root], NOW)


def test_anchor_with_the_issuers_name_but_another_key_is_a_signature_error(
    good: factory.Chain,
) -> None:
    impostor = build("p256").root  # also named "Test Root"
    with pytest.raises(SignatureError, match="names trust anchor CN=Test Root"):
        validate_chain(good.certs, [impostor], NOW)


def test_no_anchors_configured(good: factory.Chain) -> None:
    with pytest.raises(UntrustedAnchorError, match="no trust anchors"):
        validate_chain(good.certs, [], NOW)


@pytest.mark.parametrize("layer", ["alias1", "alias2"])
def test_bad_signature(kind: str, layer: str) -> None:
    layers = specs()
    layers[layer].wrong_signer = True
    chain = build(kind, layers)
    with pytest.raises(SignatureError, match=f"signature of CN=Alias L{layer[-1]}"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_expired(kind: str) -> None:
    layers = specs()
    layers["deviceid"].not_after = NOW - timedelta(days=1)
    chain = build(kind, layers)
    with pytest.raises(ExpiredError, match="CN=DeviceID expired"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_not_yet_valid(kind: str) -> None:
    layers = specs()
    layers["alias2"].not_before = NOW + timedelta(hours=1)
    chain = build(kind, layers)
    with pytest.raises(NotYetValidError, match="CN=Alias L2 is not valid before"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_expired_anchor_certificate(kind: str, good: factory.Chain) -> None:
    late = good.root.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(ExpiredError, match="CN=Test Root"):
        validate_chain(good.certs, [good.root], late)


def test_pathlen_violation(kind: str) -> None:
    layers = specs()
    layers["deviceid"].path_length = 0  # alias1 is a CA below it
    chain = build(kind, layers)
    with pytest.raises(BasicConstraintsError, match="CN=DeviceID has pathLen 0"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_pathlen_counts_a_ca_leaf(kind: str) -> None:
    layers = specs()
    layers["alias2"].ca = True
    layers["alias2"].cert_sign = True
    layers["deviceid"].path_length = 1  # alias1 and the CA leaf alias2 follow
    chain = build(kind, layers)
    with pytest.raises(BasicConstraintsError, match="a CA leaf counts"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_ca_false_issuing(kind: str) -> None:
    layers = specs()
    layers["alias1"].ca = False  # yet it signs alias2
    chain = build(kind, layers)
    with pytest.raises(
        BasicConstraintsError, match="CN=Alias L1 issued CN=Alias L2 but is not a CA"
    ):
        validate_chain(chain.certs, [chain.root], NOW)


def test_issuer_without_key_cert_sign(kind: str) -> None:
    layers = specs()
    layers["alias1"].cert_sign = False
    chain = build(kind, layers)
    with pytest.raises(BasicConstraintsError, match="keyUsage lacks keyCertSign"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_name_chaining_broken(kind: str) -> None:
    layers = specs()
    layers["alias2"].issuer = "Somebody Else"  # still signed by alias1's key
    chain = build(kind, layers)
    with pytest.raises(NameChainingError, match="do not form one chain"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_certificate_not_on_the_chain(good: factory.Chain) -> None:
    stray = build("p256").certs[0]
    with pytest.raises(NameChainingError):
        validate_chain([*good.certs, stray], [good.root], NOW)


def test_unknown_critical_extension(kind: str) -> None:
    layers = specs()
    unknown = raw_extension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    layers["alias2"].extensions.append((unknown, True))
    chain = build(kind, layers)
    with pytest.raises(UnknownCriticalExtensionError, match=r"1\.3\.6\.1\.4\.1\.55555\.1"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_critical_name_constraints_are_not_processed_so_refused(kind: str) -> None:
    # cryptography's validator would process these; edgetrust does not, on either path.
    layers = specs()
    constraints = x509.NameConstraints(
        permitted_subtrees=[x509.DNSName("example.org")], excluded_subtrees=None
    )
    layers["alias1"].extensions.append((constraints, True))
    chain = build(kind, layers)
    with pytest.raises(UnknownCriticalExtensionError, match=r"2\.5\.29\.30"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_unknown_non_critical_extension_is_ignored(kind: str) -> None:
    layers = specs()
    unknown = raw_extension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    layers["alias2"].extensions.append((unknown, False))
    chain = build(kind, layers)
    assert len(validate_chain(chain.certs, [chain.root], NOW)) == 3


def test_malformed_tcb_info(kind: str) -> None:
    layers = specs()
    # a NULL where DiceTcbInfo allows only context-tagged fields
    layers["alias1"].extensions = [(raw_extension(TCB_INFO_OID, b"\x30\x02\x05\x00"), True)]
    chain = build(kind, layers)
    with pytest.raises(DiceExtensionError, match="TcbInfo"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_riot_layout_under_the_tcb_info_oid(kind: str) -> None:
    layers = specs()
    riot = factory.riot_composite_device_id(factory.key("p256"), b"\x42" * 32)
    layers["alias1"].extensions = [(raw_extension(TCB_INFO_OID, riot), True)]
    chain = build(kind, layers)
    with pytest.raises(DiceExtensionError, match="old Microsoft RIoT CompositeDeviceID"):
        validate_chain(chain.certs, [chain.root], NOW)


def test_malformed_ueid(kind: str) -> None:
    layers = specs()
    layers["deviceid"].extensions = [(raw_extension(UEID_OID, b"\x30\x00"), False)]
    chain = build(kind, layers)
    with pytest.raises(DiceExtensionError, match="Ueid"):
        validate_chain(chain.certs, [chain.root], NOW)


# --------------------------------------------------------------------------------------------
# Precedence, inputs, and the cryptography fallback
# --------------------------------------------------------------------------------------------


def test_signature_is_reported_before_validity_on_both_paths(kind: str) -> None:
    layers = specs()
    layers["alias1"].wrong_signer = True
    layers["alias2"].not_after = NOW - timedelta(days=1)
    chain = build(kind, layers)
    with pytest.raises(SignatureError):
        validate_chain(chain.certs, [chain.root], NOW)


def test_naive_time_is_refused(good: factory.Chain) -> None:
    with pytest.raises(ConfigError, match="timezone-aware"):
        validate_chain(good.certs, [good.root], datetime(2025, 1, 1))


def test_only_anchors_given(good: factory.Chain) -> None:
    with pytest.raises(CertificateError, match="only trust anchors"):
        validate_chain([good.root], [good.root], NOW)


def test_order_chain_detects_a_cycle() -> None:
    a_key, b_key = factory.key("p256"), factory.key("p256")
    a = _bare_cert("A", "B", a_key, b_key)
    b = _bare_cert("B", "A", b_key, a_key)
    with pytest.raises(NameChainingError, match="cycle"):
        order_chain([a, b])


def test_issuer_key_on_an_unaccepted_curve(kind: str) -> None:
    # cryptography's validator refuses the secp256k1 anchor key; our diagnosis says why.
    root_key = ec.generate_private_key(ec.SECP256K1())
    root = _bare_cert("R", "R", root_key, root_key)
    leaf = _bare_cert("L", "R", factory.key(kind), root_key)
    with pytest.raises(AlgorithmError, match="curve secp256k1 is not accepted"):
        validate_chain([leaf], [root], NOW)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("validation failed: candidates exhausted: signature does not match", SignatureError),
        ("validation failed: cert is not valid at validation time", ValidityError),
        ("validation failed: path length constraint violated", BasicConstraintsError),
        (
            "validation failed: invalid extension: 1.2.3: certificate contains unaccounted-for "
            "critical extensions (encountered processing <Certificate(...)>)",
            UnknownCriticalExtensionError,
        ),
        (
            "validation failed: all candidates exhausted with no interior errors",
            UntrustedAnchorError,
        ),
        ("validation failed: something new", CertificateError),
    ],
)
def test_translation_of_unexplained_verification_errors(
    message: str, error: type[Exception]
) -> None:
    translated = path_validator.translate_error(VerificationError(message))
    assert type(translated) is error
    assert "encountered processing" not in str(translated)


# --------------------------------------------------------------------------------------------


def _renamed_root() -> dict[str, factory.Spec]:
    layers = specs()
    layers["root"].subject = layers["root"].issuer = "Other Root"
    return layers


def _bare_cert(
    subject: str,
    issuer: str,
    subject_key: factory.PrivateKey,
    issuer_key: factory.PrivateKey,
) -> x509.Certificate:
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    builder = (
        x509.CertificateBuilder()
        .subject_name(factory.name(subject))
        .issuer_name(factory.name(issuer))
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def test_now_is_normalised_to_utc(good: factory.Chain) -> None:
    from datetime import timezone

    tokyo = NOW.astimezone(timezone(timedelta(hours=9)))
    assert validate_chain(good.certs, [good.root], tokyo).leaf == good.leaf
    assert tokyo.tzinfo is not UTC


# --------------------------------------------------------------------------------------------
# Fuzzing: a damaged certificate gives an edgetrust error, never another exception
# --------------------------------------------------------------------------------------------

_FUZZ_CHAINS = {k: build(k) for k in KINDS}


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    which=st.integers(0, 2),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1, max_size=3),
)
def test_damaged_certificates_raise_only_edgetrust_errors(
    kind: str, which: int, flips: list[tuple[int, int]]
) -> None:
    chain = _FUZZ_CHAINS[kind]
    der = bytearray(chain.certs[which].public_bytes(serialization.Encoding.DER))
    for position, mask in flips:
        der[position % len(der)] ^= mask
    certs = list(chain.certs)
    # cryptography's own loader (not ours, which refuses more up front): validate_chain must
    # cope with whatever it lets through, including fields it parses only lazily.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            certs[which] = x509.load_der_x509_certificate(bytes(der))
    except (ValueError, x509.InvalidVersion, Warning):
        return
    with contextlib.suppress(Error):
        validate_chain(certs, [chain.root], NOW)


def test_a_lazily_unparseable_certificate_is_an_asn1_error(good: factory.Chain) -> None:
    der = bytearray(good.certs[0].public_bytes(serialization.Encoding.DER))
    der[der.find(b"Alias L1") - 2] = 0x0D  # the issuer's string tag becomes RELATIVE-OID
    damaged = x509.load_der_x509_certificate(bytes(der))  # loads: names are parsed lazily
    with pytest.raises(ASN1Error, match="certificate 1 is malformed"):
        validate_chain([damaged, *good.certs[1:]], [good.root], NOW)
    with pytest.raises(ASN1Error, match="not a valid certificate"):
        load_certificate(bytes(der))  # our loader refuses it up front
