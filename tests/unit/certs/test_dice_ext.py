"""DICE extension value classes: round trips, strict DER, refusals, and fuzzed decoders."""

from __future__ import annotations

import contextlib
import re

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.certs.dice_ext import (
    FWID,
    MULTI_TCB_INFO_OID,
    TCB_INFO_OID,
    IntegrityRegister,
    MultiTcbInfo,
    MultiTcbInfoExtension,
    OpenDiceInput,
    OpenDiceInputExtension,
    OpenDiceMode,
    OperationalFlag,
    OperationalFlags,
    TcbInfo,
    TcbInfoExtension,
    Ueid,
    UeidExtension,
)
from edgetrust.errors import ASN1Error, DiceExtensionError
from tests.unit.certs.factory import key, riot_composite_device_id, tlv

FULL = TcbInfo(
    vendor="acme",
    model="m1",
    version="1.0",
    svn=3,
    layer=1,
    index=0,
    fwids=(FWID.of(b"\x11" * 32), FWID.of(b"\x22" * 48, "sha384")),
    flags=OperationalFlags(value=OperationalFlag.DEBUG | OperationalFlag.NOT_SECURE),
    vendor_info=b"vi",
    tcb_type=b"ty",
    flags_mask=OperationalFlags(value=OperationalFlag(0xFFFFFFFF)),
    integrity_registers=(
        IntegrityRegister(name="PCR0", number=0, digests=(FWID.of(b"\x33" * 32),)),
    ),
)


def test_tcb_info_round_trip_all_fields() -> None:
    der = FULL.to_der()
    assert TcbInfo.from_der(der) == FULL
    assert TcbInfo.from_der(der).to_der() == der


def test_tcb_info_empty_round_trip() -> None:
    assert TcbInfo.from_der(TcbInfo().to_der()) == TcbInfo()
    assert TcbInfo().to_der() == b"\x30\x00"


def test_flags_bits_follow_the_spec_numbering() -> None:
    # notConfigured is BIT STRING bit 0, i.e. the most significant bit of the first octet.
    der = TcbInfo(flags=OperationalFlags(value=OperationalFlag.NOT_CONFIGURED)).to_der()
    assert der == bytes.fromhex("3007870500" + "80000000")
    flags = TcbInfo.from_der(bytes.fromhex("3007870500" + "10000001")).flags
    assert flags is not None
    assert flags.debug
    assert not flags.recovery
    assert flags.names() == ("debug", "fixedWidth")
    assert FULL.flags is not None
    assert FULL.flags.not_secure
    assert not FULL.flags.not_configured


def test_flags_keep_their_width() -> None:
    der = bytes.fromhex("300487020780")  # a 1-bit BIT STRING (7 unused bits): notConfigured
    value = TcbInfo.from_der(der)
    assert value.flags == OperationalFlags(value=OperationalFlag.NOT_CONFIGURED, width=1)
    assert value.to_der() == der


def test_multi_tcb_info_round_trip() -> None:
    value = MultiTcbInfo(entries=(FULL, TcbInfo(layer=2)))
    assert MultiTcbInfo.from_der(value.to_der()) == value


def test_ueid_round_trip() -> None:
    assert Ueid.from_der(Ueid(value=b"\x01\x02").to_der()) == Ueid(value=b"\x01\x02")
    assert Ueid(value=b"\x01\x02").to_der() == bytes.fromhex("300404020102")


def test_open_dice_round_trip_and_integer_mode() -> None:
    value = OpenDiceInput(code_hash=bytes(64), mode=OpenDiceMode.DEBUG, profile_name="p")
    assert OpenDiceInput.from_der(value.to_der()) == value
    # The spec text says INTEGER, open-dice writes ENUMERATED: both decode.
    assert OpenDiceInput.from_der(bytes.fromhex("3005a603020102")).mode is OpenDiceMode.DEBUG
    assert OpenDiceInput.from_der(bytes.fromhex("3005a6030a0102")).mode is OpenDiceMode.DEBUG
    assert value.to_dict()["mode"] == "debug"


def test_extension_types_carry_the_oids() -> None:
    assert TcbInfoExtension.oid == TCB_INFO_OID
    assert MultiTcbInfoExtension.oid == MULTI_TCB_INFO_OID
    assert TcbInfoExtension(FULL).public_bytes() == FULL.to_der()
    assert TcbInfoExtension(FULL) == TcbInfoExtension(FULL)
    assert hash(UeidExtension(Ueid(value=b"1"))) == hash(UeidExtension(Ueid(value=b"1")))
    assert TcbInfoExtension(FULL) != UeidExtension(Ueid(value=b"1"))
    assert OpenDiceInputExtension(OpenDiceInput()).value == OpenDiceInput()
    assert isinstance(TcbInfoExtension(FULL), x509.ExtensionType)


# --------------------------------------------------------------------------------------------
# Refusals (each a DiceExtensionError with a precise message)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (FULL.to_der() + b"\x00", "1 trailing bytes"),
        (bytes.fromhex("3100"), "malformed DER"),  # SET, not SEQUENCE
        (bytes.fromhex("3003020101"), "unexpected universal tag 2"),  # an INTEGER inside
        (bytes.fromhex("30038301"), "malformed DER"),  # truncated
        (bytes.fromhex("3081038301 05".replace(" ", "")), "not DER"),  # non-minimal length
        (bytes.fromhex("300483020005"), "not DER"),  # svn 0x0005: non-minimal INTEGER
        (bytes.fromhex("3006830101800161"), "unexpected context tag 0"),  # out of order
        (bytes.fromhex("30038c0100"), "unexpected context tag 12"),  # unknown field [12]
        (bytes.fromhex("30038301ff"), "svn must not be negative"),
        (bytes.fromhex("30038001ff"), "malformed"),  # vendor: invalid UTF-8
        (bytes.fromhex("3002a600"), "fwids must hold 1 or more FWID"),  # SIZE (1..MAX)
        (b"", "malformed DER"),
    ],
)
def test_tcb_info_refusals(der: bytes, message: str) -> None:
    with pytest.raises(DiceExtensionError, match=message):
        TcbInfo.from_der(der)


def test_riot_layout_is_refused_by_name() -> None:
    riot = riot_composite_device_id(key("p256"), b"\x42" * 32)
    with pytest.raises(DiceExtensionError, match="old Microsoft RIoT CompositeDeviceID") as caught:
        TcbInfo.from_der(riot)
    assert "malformed DER" in str(caught.value.__cause__)


def test_fwid_with_the_wrong_digest_size_is_refused() -> None:
    sha256 = bytes.fromhex("0609608648016503040201")
    der = tlv(0x30, tlv(0xA6, tlv(0x30, sha256 + tlv(0x04, b"\x00" * 31))))
    with pytest.raises(DiceExtensionError, match="31 bytes; sha256 digests are 32"):
        TcbInfo.from_der(der)
    unknown = tlv(0x30, tlv(0xA6, tlv(0x30, bytes.fromhex("06032a0304") + tlv(0x04, b"x"))))
    fwids = TcbInfo.from_der(unknown).fwids
    assert fwids is not None
    assert fwids[0].hash_name is None
    assert fwids[0].to_dict()["hash_alg"] == "1.2.3.4"


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (bytes.fromhex("3000"), "malformed DER"),  # ueid missing
        (bytes.fromhex("30020400"), "non-empty"),
        (bytes.fromhex("3003040101") + b"\x00", "trailing"),
    ],
)
def test_ueid_refusals(der: bytes, message: str) -> None:
    with pytest.raises(DiceExtensionError, match=message):
        Ueid.from_der(der)


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (bytes.fromhex("3005a6030a0104"), "mode 4 is not 0..3"),
        (tlv(0x30, tlv(0xA0, tlv(0x04, bytes(63)))), "code_hash is 63 bytes, not 64"),
        (bytes.fromhex("3004a0020400") + b"", "code_hash is 0 bytes"),
        (bytes.fromhex("3004800200"), "malformed DER"),  # implicit where explicit is required
    ],
)
def test_open_dice_refusals(der: bytes, message: str) -> None:
    with pytest.raises(DiceExtensionError, match=message):
        OpenDiceInput.from_der(der)


def test_multi_tcb_info_must_not_be_empty() -> None:
    with pytest.raises(DiceExtensionError):
        MultiTcbInfo.from_der(bytes.fromhex("3000"))
    with pytest.raises(DiceExtensionError, match="1 or more"):
        MultiTcbInfo(entries=())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"svn": -1}, "svn must not be negative"),
        ({"layer": True}, "layer must be an integer"),
        ({"vendor": b"x"}, "vendor must be str"),
        ({"fwids": ()}, "1 or more FWID"),
        ({"fwids": FWID.of(bytes(32))}, "sequence of FWID"),
        ({"flags": 3}, "flags must be OperationalFlags"),
    ],
)
def test_tcb_info_constructor_refusals(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(DiceExtensionError, match=message):
        TcbInfo(**kwargs)  # type: ignore[arg-type]


def test_fwid_and_flags_constructor_refusals() -> None:
    with pytest.raises(DiceExtensionError, match="unknown FWID hash"):
        FWID.of(b"x", "md5")
    with pytest.raises(DiceExtensionError, match="not an OID"):
        FWID(hash_alg="sha256", digest=bytes(32))
    with pytest.raises(DiceExtensionError, match="do not fit in 4 bits"):
        OperationalFlags(value=OperationalFlag.DEBUG | OperationalFlag.FIXED_WIDTH, width=4)
    with pytest.raises(DiceExtensionError, match="expected DER bytes"):
        TcbInfo.from_der("3000")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# DER strictness of the declarative decoder (cryptography.hazmat.asn1), each named
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("der", "message"),
    [
        ("30808301050000", "not DER (indefinite length)"),  # BER indefinite length
        ("3006a68030000000", "not DER (indefinite length)"),  # fwids
        ("30058381010105", "not DER (non-minimal length)"),  # svn
        ("3007a605308100 0400", "not DER (non-minimal length in fwids[0])"),
        ("30048302ffff", "not DER (non-minimal INTEGER svn)"),  # -1 padded with 0xff
        ("30029f03", "not DER (non-minimal tag)"),  # [3] in the high-tag-number form
        ("3003ff0100", "not DER (non-minimal tag)"),
        ("3003430105", "unexpected application tag 3 (primitive)"),  # wrong tag class
        ("3003c30105", "unexpected private tag 3 (primitive)"),
        ("3003030105", "unexpected universal tag 3 (primitive)"),
        ("3005a303020105", "unexpected context tag 3 (constructed)"),  # wrong form
        ("30058603300100", "unexpected context tag 6 (primitive)"),  # fwids not constructed
        ("3007a0050403616263", "unexpected context tag 0 (constructed)"),  # constructed string
        ("30038701 07", "BIT STRING flags with 7 unused bits"),  # unused bits, no octets
        ("3004870207ff", "not DER (unused bits of BIT STRING flags are not zero)"),
        ("300487020801", "BIT STRING flags with 8 unused bits"),
        ("30048a0201ff", "not DER (unused bits of BIT STRING flagsMask are not zero)"),
        ("3008a606300406008000", "OBJECT IDENTIFIER fwids[0].hashAlg"),  # empty OID
        ("300aa6083006060280010400", "non-minimal OBJECT IDENTIFIER fwids[0].hashAlg"),
        ("3006a6043002 0400", "unexpected universal tag 4 (primitive) instead of fwids[0].hashAlg"),
        ("3004 ab02 3000", "missing integrityRegisters[0].registerDigests"),
        ("3006 ab04 3002 3000", "an empty SEQUENCE OF integrityRegisters[0].registerDigests"),
        ("3005 ab03 3001 16", "truncated in integrityRegisters[0]"),
        ("3004 9f1f 0100", "unexpected context tag 31 (primitive)"),  # high tag, unknown field
        ("30038b0100", "unexpected context tag 11 (primitive)"),  # [11] must be constructed
    ],
)
def test_tcb_info_der_strictness(der: str, message: str) -> None:
    with pytest.raises(DiceExtensionError, match=re.escape(message)):
        TcbInfo.from_der(bytes.fromhex(der.replace(" ", "")))


def test_minimal_integers_with_a_sign_octet_are_der() -> None:
    assert TcbInfo.from_der(bytes.fromhex("3004830200ff")).svn == 255
    assert TcbInfo.from_der(bytes.fromhex("30058303008000")).svn == 0x8000


def test_utf8_and_ia5_strings_are_checked() -> None:
    with pytest.raises(DiceExtensionError, match=r"malformed value \(model is not valid UTF-8\)"):
        TcbInfo.from_der(bytes.fromhex("30048102c328"))
    fwid = tlv(0x30, bytes.fromhex("0609608648016503040201") + tlv(0x04, bytes(32)))
    register = tlv(0x30, tlv(0x16, "é".encode()) + tlv(0x30, fwid))
    with pytest.raises(DiceExtensionError, match="registerName is not an IA5String"):
        TcbInfo.from_der(tlv(0x30, tlv(0xAB, register)))


def test_multi_tcb_info_long_form_lengths_round_trip() -> None:
    # Over 255 bytes: the synthetic SEQUENCE header and the stripped one use long-form lengths.
    value = MultiTcbInfo(entries=tuple(TcbInfo(layer=i, vendor="v" * 40) for i in range(8)))
    der = value.to_der()
    assert der[:2] == b"\x30\x82"
    assert MultiTcbInfo.from_der(der) == value
    assert MultiTcbInfo.from_der(der).to_der() == der
    with pytest.raises(DiceExtensionError, match="1 trailing bytes"):
        MultiTcbInfo.from_der(der + b"\x00")
    with pytest.raises(DiceExtensionError, match=r"not DER \(non-minimal INTEGER \[1\]\.svn\)"):
        MultiTcbInfo.from_der(tlv(0x30, tlv(0x30, b"") + tlv(0x30, bytes.fromhex("83020001"))))
    with pytest.raises(DiceExtensionError, match="an empty SEQUENCE OF"):
        MultiTcbInfo.from_der(bytes.fromhex("3000"))


@pytest.mark.parametrize(
    ("der", "message"),
    [
        ("3006a6040a020002", "mode: not DER (non-minimal ENUMERATED)"),
        ("3006a60402020002", "not DER"),  # non-minimal INTEGER mode
        ("3004a6020a00", "mode: malformed DER (empty ENUMERATED)"),
        ("3005a603040102", "mode is neither INTEGER nor ENUMERATED (tag 04)"),
        ("3005a6030201ff", "mode -1 is not 0..3"),
        ("3006a6040a01ff00", "1 extra bytes in mode"),
        ("3005a0030c0100", "unexpected universal tag 12 (primitive) in codeHash"),
        ("3005a7030c01ff", "profileName is not valid UTF-8"),
        ("3005a0808000 00", "indefinite length"),
        ("3005a603020102 00", "1 trailing bytes"),
    ],
)
def test_open_dice_mode_and_der_strictness(der: str, message: str) -> None:
    with pytest.raises(DiceExtensionError, match=re.escape(message)):
        OpenDiceInput.from_der(bytes.fromhex(der.replace(" ", "")))


def test_open_dice_mode_encodes_as_enumerated_and_integer_decodes() -> None:
    for mode in OpenDiceMode:
        der = OpenDiceInput(mode=mode).to_der()
        assert der == bytes.fromhex(f"3005a6030a01{mode:02x}")
        assert OpenDiceInput.from_der(der).mode is mode
        assert OpenDiceInput.from_der(bytes.fromhex(f"3005a60302010{mode}")).mode is mode


def test_flags_of_every_width_round_trip() -> None:
    for width in (0, 1, 7, 8, 9, 31, 32, 33, 64):
        for value in {0, (1 << width) - 1, 0b101 & ((1 << width) - 1)}:
            flags = OperationalFlags(value=OperationalFlag(value), width=width)
            der = TcbInfo(flags=flags).to_der()
            assert TcbInfo.from_der(der).flags == flags
            assert der[4] == -width % 8  # the unused-bits octet


# --------------------------------------------------------------------------------------------
# Fuzzing: only our own errors may escape a decoder
# --------------------------------------------------------------------------------------------

DECODERS = [TcbInfo.from_der, MultiTcbInfo.from_der, Ueid.from_der, OpenDiceInput.from_der]


def _mutations() -> st.SearchStrategy[bytes]:
    seeds = [
        FULL.to_der(),
        MultiTcbInfo(entries=(FULL,)).to_der(),
        Ueid(value=b"\x01" * 8).to_der(),
        OpenDiceInput(code_hash=bytes(64), mode=OpenDiceMode.NORMAL, profile_name="x").to_der(),
        riot_composite_device_id(key("p256"), b"\x42" * 32),
    ]

    def mutate(seed: bytes, data: st.DataObject) -> bytes:
        out = bytearray(seed)
        for _ in range(data.draw(st.integers(1, 4))):
            if not out:
                break
            i = data.draw(st.integers(0, len(out) - 1))
            choice = data.draw(st.integers(0, 2))
            if choice == 0:
                out[i] = data.draw(st.integers(0, 255))
            elif choice == 1:
                del out[i]
            else:
                out.insert(i, data.draw(st.integers(0, 255)))
        return bytes(out)

    return st.builds(mutate, st.sampled_from(seeds), st.data())


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=200), _mutations()))
def test_decoders_raise_only_our_errors(data: bytes) -> None:
    for decode in DECODERS:
        with contextlib.suppress(DiceExtensionError, ASN1Error):
            decode(data)


def test_device_chosen_flag_patterns_do_not_grow_the_enum() -> None:
    """Distinct flag bit patterns from devices must not be cached by the OperationalFlag enum."""
    from edgetrust.certs.dice_ext import OperationalFlag, OperationalFlags

    before = len(OperationalFlag._value2member_map_)
    for n in range(1, 500):
        flags = OperationalFlags(value=(n << 9) | 1, width=32)  # unnamed bits 9.. + notConfigured
        decoded = OperationalFlags._from_asn1(flags._to_asn1())
        assert decoded.value == flags.value
        assert decoded.not_configured
        assert f"bit{9 + (n & -n).bit_length() - 1}" in decoded.names()
    assert len(OperationalFlag._value2member_map_) - before <= 2
