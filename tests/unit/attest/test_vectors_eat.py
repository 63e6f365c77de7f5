"""EAT examples from the RFC 9711 sources: parse-only, as their README in tests/vectors says."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import cbor, cose, eat
from edgetrust.errors import SignatureError


def _read(vectors_dir: Path, name: str) -> bytes:
    return (vectors_dir / "external" / "eat-rfc9711" / name).read_bytes()


def test_valid_cwt_decodes(vectors_dir: Path) -> None:
    token = _read(vectors_dir, "valid_cwt.cbor")
    assert cbor.loads(token).tag == eat.CWT_TAG
    msg, claims = eat.decode_eat(token)
    assert isinstance(msg, cose.Sign1Message)
    assert msg.alg is cose.Algorithm.ES256
    assert claims.nonce == bytes.fromhex("d79b964ddd5471c1393c8888")
    assert claims.ueid == bytes.fromhex("0198f50a4ff6c05861c8860d13a638ea")
    assert claims.oemid == 64242
    assert claims.hwversion == eat.Version(version="3.1", scheme=1)
    assert claims.oemboot is True
    assert claims.dbgstat is eat.DebugStatus.DISABLED_PERMANENTLY
    assert claims.extra == {}


def test_valid_cwt_has_no_published_key(vectors_dir: Path) -> None:
    # parse-only: whatever key we try, the placeholder signature does not verify
    key = ec.derive_private_key(1, ec.SECP256R1()).public_key()
    with pytest.raises(SignatureError):
        eat.verify_eat(_read(vectors_dir, "valid_cwt.cbor"), key)


def test_valid_tee_claims_set(vectors_dir: Path) -> None:
    claims = eat.decode_claims(cbor.loads(_read(vectors_dir, "valid_tee.cbor"), expect=dict))
    assert claims.nonce == bytes.fromhex("48df7b172d70b5a18935d0460a73dd71")
    assert claims.oemboot is True
    assert claims.dbgstat is eat.DebugStatus.DISABLED_SINCE_BOOT
    assert claims.manifests is not None
    (manifest,) = claims.manifests
    assert manifest.content_format == 258  # CoSWID
    coswid = cbor.loads(manifest.content)
    assert coswid[1] == "Acme TEE OS"
    assert coswid[13] == "3.1.4"


def test_claim_keys_match_rfc9711_iana() -> None:
    # RFC 9711 section 10.1 (CWT Claims registry) and RFC 8392 / RFC 8747
    expected = {
        "iss": 1, "sub": 2, "aud": 3, "exp": 4, "nbf": 5, "iat": 6, "cti": 7, "cnf": 8,
        "eat_nonce": 10, "ueid": 256, "sueids": 257, "oemid": 258, "hwmodel": 259,
        "hwversion": 260, "uptime": 261, "oemboot": 262, "dbgstat": 263, "location": 264,
        "eat_profile": 265, "submods": 266, "bootcount": 267, "bootseed": 268, "dloas": 269,
        "swname": 270, "swversion": 271, "manifests": 272, "measurements": 273,
        "measres": 274, "intuse": 275,
    }  # fmt: skip
    assert {name: key for key, name in eat.CLAIM_NAMES.items()} == expected
