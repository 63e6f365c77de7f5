"""Firmware release files: their digests are read like reference values' (same messages)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edgetrust.attest.products import DigestAlgorithm, product_from_dict
from edgetrust.errors import ConfigError
from edgetrust.onboarding.factory_config import FirmwareRelease

DIGESTS = {"sha256": "aa" * 32, "sha384": "bb" * 48}
RELEASE: dict[str, Any] = {
    "format": "edgetrust-firmware-release",
    "version": 1,
    "product": "cam",
    "firmware_version": "1.0.0",
    "layers": [{"name": "bootloader", "version": "1.0.0", "svn": 1, "digests": DIGESTS}],
    "components": [{"name": "model", "version": "1", "digests": DIGESTS}],
}
PRODUCT: dict[str, Any] = {
    "product": "cam",
    "firmware": [{"version": "1.0.0", "layers": [{"name": "bootloader", "digests": DIGESTS}]}],
}


def test_release_digests() -> None:
    release = FirmwareRelease.from_dict(RELEASE, "1.0.0.json")
    assert release.layers[0].digests == {
        DigestAlgorithm.SHA256: b"\xaa" * 32,
        DigestAlgorithm.SHA384: b"\xbb" * 48,
    }
    assert release.layers[0].svn == 1
    assert release.components[0].svn is None
    assert not release.components[0].dice


@pytest.mark.parametrize(
    ("digests", "message"),
    [
        ({}, "digests: at least one digest is required"),
        ({"md5": "00" * 16}, "digests.md5: unknown digest algorithm (sha256, sha384, sha512)"),
        ({"sha256": "aa" * 31}, "digests.sha256: expected 64 hex digits"),
        ({"sha256": "zz"}, "digests.sha256: expected a hexadecimal string"),
        ({"sha256": None}, "digests.sha256: expected a hexadecimal string"),
        ("aa" * 32, "digests: expected a JSON object"),
    ],
)
def test_bad_digests_are_named_as_in_reference_values(digests: object, message: str) -> None:
    release = copy.deepcopy(RELEASE)
    release["components"][0]["digests"] = digests
    with pytest.raises(ConfigError) as info:
        FirmwareRelease.from_dict(release, "1.0.0.json")
    assert str(info.value).startswith(f"1.0.0.json.components[0].{message}")
    product = copy.deepcopy(PRODUCT)
    product["firmware"][0]["layers"][0]["digests"] = digests
    with pytest.raises(ConfigError) as info:
        product_from_dict(product, "products[0]")
    assert str(info.value).startswith(f"products[0].firmware[0].layers[0].{message}")


def test_missing_digests() -> None:
    release = copy.deepcopy(RELEASE)
    del release["layers"][0]["digests"]
    with pytest.raises(ConfigError, match=r"layers\[0\]\.digests: required field missing"):
        FirmwareRelease.from_dict(release, "1.0.0.json")
