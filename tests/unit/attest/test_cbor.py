"""Strict CBOR: a named test per rejection rule; hypothesis checks that only our errors leak."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgetrust.attest import cbor
from edgetrust.errors import CBORError, EvidenceError, OversizeError

# --- accepted ---------------------------------------------------------------------------------


def test_decodes_one_item() -> None:
    assert cbor.loads(bytes.fromhex("a26161016162820203")) == {"a": 1, "b": [2, 3]}


def test_tags_come_back_raw() -> None:
    # tag 1 (epoch time) would be a datetime in cbor2; tag 2 (bignum) an int; tag 28/29 a cycle
    assert cbor.loads(bytes.fromhex("c11a514b67b0")) == cbor.Tag(1, 1363896240)
    assert cbor.loads(bytes.fromhex("c249010000000000000000")) == cbor.Tag(
        2, bytes.fromhex("010000000000000000")
    )
    value = cbor.loads(bytes.fromhex("d81c81d81d00"))  # shareable([sharedref(0)]): no cycle
    assert isinstance(value, cbor.Tag)
    assert value.tag == 28
    assert list(value.value) == [cbor.Tag(29, 0)]


def test_expect_accepts_frozen_forms_inside_tags() -> None:
    value = cbor.loads(bytes.fromhex("d28443a10126a0f640"), expect=cbor.Tag)
    assert value.tag == 18
    assert cbor.is_array(value.value)
    assert cbor.is_map(value.value[1])


def test_expect_bool_is_not_int() -> None:
    with pytest.raises(CBORError, match="expected a CBOR integer"):
        cbor.loads(b"\xf5", expect=int)


# --- rejected (one test per rule) ----------------------------------------------------------------


def test_trailing_bytes() -> None:
    with pytest.raises(CBORError, match="1 trailing byte"):
        cbor.loads(bytes.fromhex("0102"))


def test_trailing_bytes_after_a_large_item() -> None:
    item = cbor.dumps([b"x" * 5000, {i: i for i in range(300)}])
    assert cbor.loads(item, max_size=1 << 20) is not None
    with pytest.raises(CBORError, match="trailing"):
        cbor.loads(item + b"\x00", max_size=1 << 20)


def test_duplicate_map_keys() -> None:
    with pytest.raises(CBORError, match=r"[Dd]uplicate"):
        cbor.loads(bytes.fromhex("a201020103"))


def test_duplicate_keys_in_a_nested_map() -> None:
    with pytest.raises(CBORError, match=r"[Dd]uplicate"):
        cbor.loads(bytes.fromhex("81a2616101616102"))


def test_indefinite_length_array() -> None:
    with pytest.raises(CBORError, match="indefinite"):
        cbor.loads(bytes.fromhex("9f01ff"))


def test_indefinite_length_byte_string() -> None:
    with pytest.raises(CBORError, match="indefinite"):
        cbor.loads(bytes.fromhex("5f41014102ff"))


def test_indefinite_length_map() -> None:
    with pytest.raises(CBORError, match="indefinite"):
        cbor.loads(bytes.fromhex("bf0102ff"))


def test_too_deep() -> None:
    with pytest.raises(CBORError, match="depth"):
        cbor.loads(b"\x81" * 17 + b"\x00")
    assert cbor.loads(b"\x81" * 15 + b"\x00") is not None


def test_too_deep_counts_tags() -> None:
    with pytest.raises(CBORError, match="depth"):
        cbor.loads(b"\xd8\x64" * 40 + b"\x00")


def test_oversize() -> None:
    with pytest.raises(OversizeError):
        cbor.loads(cbor.dumps(b"x" * 100), max_size=50)


def test_oversize_default_is_64_kib() -> None:
    with pytest.raises(OversizeError):
        cbor.loads(cbor.dumps(b"x" * 65536))


def test_declared_length_beyond_input() -> None:
    with pytest.raises(CBORError):
        cbor.loads(bytes.fromhex("5b7fffffffffffffff"))


def test_wrong_top_level_type() -> None:
    with pytest.raises(CBORError, match="expected a CBOR map at top level, got an array"):
        cbor.loads(bytes.fromhex("8101"), expect=dict)


def test_empty_input() -> None:
    with pytest.raises(CBORError, match="empty"):
        cbor.loads(b"")


def test_lone_break() -> None:
    with pytest.raises(CBORError):
        cbor.loads(b"\xff")


def test_reserved_additional_information() -> None:
    with pytest.raises(CBORError):
        cbor.loads(b"\x1c")


def test_invalid_utf8_text() -> None:
    with pytest.raises(CBORError):
        cbor.loads(b"\x61\xff")


def test_not_bytes() -> None:
    with pytest.raises(CBORError):
        cbor.loads("a1" * 3)  # type: ignore[arg-type]


# --- deterministic encoding (RFC 8949 section 4.2.1) ------------------------------------------


def test_map_keys_in_bytewise_order_of_their_encoding() -> None:
    # 10 (0a) < 256 (190100) < -1 (20) < "a" (6161); cbor2's canonical (length-first) differs
    assert cbor.dumps({-1: 1, 256: 2, "a": 3, 10: 4}).hex() == "a40a04190100022001616103"


def test_preferred_serialization() -> None:
    assert cbor.dumps(23) == b"\x17"
    assert cbor.dumps(24) == b"\x18\x18"
    assert cbor.dumps(1.0) == bytes.fromhex("f93c00")
    assert cbor.dumps(-75000) == bytes.fromhex("3a000124f7")


def test_dumps_tag_and_nesting() -> None:
    assert cbor.dumps(cbor.Tag(18, [b"", {}, None, b""])).hex() == "d28440a0f640"


def test_dumps_rejects_unknown_types() -> None:
    with pytest.raises(CBORError):
        cbor.dumps(object())


# --- properties ---------------------------------------------------------------------------------

scalars = (
    st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.integers(-300, 300) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_evidence_errors(data: bytes) -> None:
    with contextlib.suppress(EvidenceError):
        cbor.loads(data)


@settings(max_examples=200, deadline=None)
@given(values)
def test_dumps_then_loads_round_trips(value: object) -> None:
    encoded = cbor.dumps(value)
    assert cbor.dumps(cbor.loads(encoded, max_size=1 << 20)) == encoded


@settings(max_examples=200, deadline=None)
@given(values, st.binary(min_size=1, max_size=8))
def test_any_trailing_bytes_are_rejected(value: object, suffix: bytes) -> None:
    with pytest.raises(CBORError):
        cbor.loads(cbor.dumps(value) + suffix, max_size=1 << 20)


@settings(max_examples=200, deadline=None)
@given(values, st.data())
def test_mutated_encodings_raise_only_evidence_errors(value: object, data: st.DataObject) -> None:
    encoded = bytearray(cbor.dumps(value))
    index = data.draw(st.integers(0, len(encoded) - 1))
    encoded[index] = data.draw(st.integers(0, 255))
    with contextlib.suppress(EvidenceError):
        cbor.loads(bytes(encoded))
