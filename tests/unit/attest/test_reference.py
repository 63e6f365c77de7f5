"""Reference values and endorsement bundles: JSON round trips and strict loading."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgetrust.attest.reference import (
    DebugPolicy,
    DigestAlgorithm,
    DigestVerdict,
    EndorsementBundle,
    FirmwareReference,
    LayerReference,
    ProductReference,
    ReferenceValues,
    SecureBootPolicy,
    parse_anchors,
)
from edgetrust.errors import ConfigError

SHA256_A = "aa" * 32
SHA384_A = "bb" * 48


def _document() -> dict[str, Any]:
    return {
        "format": "edgetrust-reference-values",
        "version": 1,
        "products": [
            {
                "product": "edgetrust-sim",
                "description": "simulated camera",
                "oemid": "0a0b0c",
                "svn_min": {"bootloader": 1, "firmware": 3},
                "firmware": [
                    {
                        "version": "1.0.0",
                        "debug": "forbidden",
                        "secure_boot": "required",
                        "layers": [
                            {
                                "name": "bootloader",
                                "digests": {"sha256": SHA256_A, "sha384": SHA384_A},
                            },
                            {"name": "model", "digests": {"sha256": "cc" * 32}, "dice": False},
                        ],
                    }
                ],
            }
        ],
    }


def _root_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_load_document() -> None:
    refs = ReferenceValues.from_dict(_document())
    product = refs.product_for(b"edgetrust-sim")
    assert product is not None
    assert product.oemid == bytes.fromhex("0a0b0c")
    assert product.minimum_svn("firmware") == 3
    assert product.minimum_svn("model") is None
    fw = refs.lookup(b"edgetrust-sim", "1.0.0")
    assert fw is not None
    assert fw.debug is DebugPolicy.FORBIDDEN
    assert fw.secure_boot is SecureBootPolicy.REQUIRED
    boot = fw.layer("bootloader")
    assert boot is not None
    assert boot.digests[DigestAlgorithm.SHA384] == bytes.fromhex(SHA384_A)
    assert [layer.name for layer in fw.dice_layers] == ["bootloader"]
    assert refs.lookup(b"edgetrust-sim", "9.9") is None
    assert refs.lookup(b"other", "1.0.0") is None


def test_json_round_trip(tmp_path: Path) -> None:
    refs = ReferenceValues.from_dict(_document())
    path = tmp_path / "refs.json"
    refs.save(path)
    again = ReferenceValues.load(path)
    assert again == refs
    assert ReferenceValues.from_json(again.to_json()) == refs


def test_defaults_and_hwmodel_override() -> None:
    doc = _document()
    product = doc["products"][0]
    product["hwmodel"] = "0102"
    fw = product["firmware"][0]
    del fw["debug"], fw["secure_boot"]
    refs = ReferenceValues.from_dict(doc)
    assert refs.product_for(b"\x01\x02") is not None
    assert refs.product_for(b"edgetrust-sim") is None
    firmware = refs.lookup(b"\x01\x02", "1.0.0")
    assert firmware is not None
    assert firmware.debug is DebugPolicy.FORBIDDEN
    assert firmware.secure_boot is SecureBootPolicy.REQUIRED
    assert ReferenceValues.from_json(refs.to_json()) == refs


def test_layer_compare() -> None:
    layer = LayerReference.of_code(
        "fw", b"code", algorithms=(DigestAlgorithm.SHA256, DigestAlgorithm.SHA384)
    )
    good = {DigestAlgorithm.SHA256: DigestAlgorithm.SHA256.digest(b"code")}
    assert layer.compare(good) is DigestVerdict.MATCH
    bad = {
        DigestAlgorithm.SHA256: DigestAlgorithm.SHA256.digest(b"code"),
        DigestAlgorithm.SHA384: DigestAlgorithm.SHA384.digest(b"evil"),
    }
    assert layer.compare(bad) is DigestVerdict.MISMATCH
    other = {DigestAlgorithm.SHA512: DigestAlgorithm.SHA512.digest(b"code")}
    assert layer.compare(other) is DigestVerdict.NO_COMMON_ALGORITHM


def test_merged_replaces_product() -> None:
    refs = ReferenceValues.from_dict(_document())
    newer = ReferenceValues(
        products=(
            ProductReference(
                product="edgetrust-sim",
                firmware=(
                    FirmwareReference(
                        version="2.0.0", layers=(LayerReference.of_code("fw", b"x"),)
                    ),
                ),
            ),
        )
    )
    merged = refs.merged(newer)
    assert merged.lookup(b"edgetrust-sim", "2.0.0") is not None
    assert merged.lookup(b"edgetrust-sim", "1.0.0") is None


# ---- strict loading: each rejection names the field -----------------------------------------


def _mutated(path: list[str | int], value: Any, *, delete: bool = False) -> dict[str, Any]:
    doc = copy.deepcopy(_document())
    target: Any = doc
    for step in path[:-1]:
        target = target[step]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["format"], "something-else", "reference values.format"),
        (["version"], 2, "unsupported format version 2"),
        (["version"], "1", "reference values.version: expected an integer"),
        (["products", 0, "svn_minn"], {}, "products[0].svn_minn: unknown field"),
        (["products", 0, "svn_min", "firmware"], -1, "svn_min.firmware: must be >= 0"),
        (["products", 0, "svn_min", "firmware"], True, "svn_min.firmware: expected an integer"),
        (["products", 0, "oemid"], "xyz", "products[0].oemid: expected a hexadecimal"),
        (["products", 0, "firmware", 0, "debug"], "maybe", "firmware[0].debug: expected one of"),
        (
            ["products", 0, "firmware", 0, "layers", 0, "digests", "md5"],
            "00" * 16,
            "digests.md5: unknown digest algorithm",
        ),
        (
            ["products", 0, "firmware", 0, "layers", 0, "digests", "sha256"],
            "aa" * 31,
            "digests.sha256: expected 64 hex digits",
        ),
        (["products", 0, "firmware", 0, "layers", 0, "dice"], "yes", "dice: expected true"),
        (["products", 0, "firmware", 0, "layers"], [], "layers: at least one layer"),
        (["products", 0, "firmware", 0, "layers", 0, "extra"], 1, "layers[0].extra: unknown"),
    ],
)
def test_rejects_bad_field(path: list[str | int], value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        ReferenceValues.from_dict(_mutated(path, value))
    assert message in str(info.value)


def test_rejects_missing_required_field() -> None:
    with pytest.raises(ConfigError, match=r"products\[0\]\.product: required field missing"):
        ReferenceValues.from_dict(_mutated(["products", 0, "product"], None, delete=True))


def test_rejects_duplicate_layer_names() -> None:
    doc = _document()
    layers = doc["products"][0]["firmware"][0]["layers"]
    layers.append(copy.deepcopy(layers[0]))
    with pytest.raises(ConfigError, match="layer name appears twice"):
        ReferenceValues.from_dict(doc)


def test_rejects_duplicate_firmware_versions() -> None:
    doc = _document()
    fws = doc["products"][0]["firmware"]
    fws.append(copy.deepcopy(fws[0]))
    with pytest.raises(ConfigError, match="version appears twice"):
        ReferenceValues.from_dict(doc)


def test_rejects_duplicate_hwmodel() -> None:
    doc = _document()
    doc["products"].append(copy.deepcopy(doc["products"][0]))
    with pytest.raises(ConfigError, match="share one hwmodel"):
        ReferenceValues.from_dict(doc)


def test_rejects_duplicate_json_keys() -> None:
    with pytest.raises(ConfigError, match="duplicate JSON key 'version'"):
        ReferenceValues.from_json(
            '{"format": "edgetrust-reference-values", "version": 1, "version": 1, "products": []}'
        )


def test_rejects_non_json() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        ReferenceValues.from_json(b"\xff not json")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        ReferenceValues.load(tmp_path / "absent.json")


def test_layer_digest_size_checked_in_python_api() -> None:
    with pytest.raises(ConfigError, match="expected 32"):
        LayerReference(name="x", digests={DigestAlgorithm.SHA256: b"short"})


# ---- endorsement bundle -----------------------------------------------------------------------


def test_endorsement_bundle_round_trip(tmp_path: Path) -> None:
    root = _root_certificate()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    refs = ReferenceValues.from_dict(_document())
    bundle = EndorsementBundle.build(anchors=[root, key], reference_values=refs)
    assert bundle.anchors[0] == root
    path = tmp_path / "endorsements.json"
    bundle.save(path)
    loaded = EndorsementBundle.load(path)
    assert loaded == bundle
    assert loaded.anchors[0] == root
    assert isinstance(loaded.anchors[1], ec.EllipticCurvePublicKey)
    assert loaded.anchors[1].public_numbers() == key.public_numbers()
    data = json.loads(path.read_text())
    assert sorted(data) == ["format", "reference_values", "trust_anchors", "version"]


def test_endorsement_bundle_rejects_missing_anchors() -> None:
    doc = {
        "format": "edgetrust-endorsements",
        "version": 1,
        "trust_anchors": "no pem here",
        "reference_values": _document(),
    }
    with pytest.raises(ConfigError, match="no CERTIFICATE or PUBLIC KEY"):
        EndorsementBundle.from_dict(doc)


def test_anchor_garbage_pem_block() -> None:
    pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    with pytest.raises(ConfigError, match="trust anchors: not a valid certificate"):
        parse_anchors(pem)


def test_anchor_private_key_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(ConfigError, match="must be a CERTIFICATE or PUBLIC KEY, not PRIVATE KEY"):
        parse_anchors(pem)


def test_oemid_as_private_enterprise_number() -> None:
    doc = _mutated(["products", 0, "oemid"], 32473)
    refs = ReferenceValues.from_dict(doc)
    product = refs.product_named("edgetrust-sim")
    assert product is not None
    assert product.oemid == 32473
    assert ReferenceValues.from_json(refs.to_json()) == refs
    with pytest.raises(ConfigError, match="Private Enterprise Number"):
        ReferenceValues.from_dict(_mutated(["products", 0, "oemid"], -1))
