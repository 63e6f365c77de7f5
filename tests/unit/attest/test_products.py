"""attest.products.read_digests: the ``digests`` object of reference values and releases."""

from __future__ import annotations

import pytest

from edgetrust.attest.products import DigestAlgorithm, read_digests
from edgetrust.errors import ConfigError


def test_reads_every_algorithm() -> None:
    data = {"sha256": "aa" * 32, "sha384": "bb" * 48, "sha512": "CC" * 64}
    assert read_digests(data, "x.digests") == {
        DigestAlgorithm.SHA256: b"\xaa" * 32,
        DigestAlgorithm.SHA384: b"\xbb" * 48,
        DigestAlgorithm.SHA512: b"\xcc" * 64,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("aa" * 32, "x.digests: expected a JSON object"),
        ({}, "x.digests: at least one digest is required"),
        (
            {"md5": "00" * 16},
            "x.digests.md5: unknown digest algorithm (sha256, sha384, sha512)",
        ),
        ({"description": "x"}, "x.digests.description: unknown digest algorithm"),
        ({"sha256": "aa" * 31}, "x.digests.sha256: expected 64 hex digits"),
        ({"sha384": "aa" * 32}, "x.digests.sha384: expected 96 hex digits"),
        ({"sha256": "zz" * 32}, "x.digests.sha256: expected a hexadecimal string"),
        ({"sha256": ""}, "x.digests.sha256: expected a hexadecimal string"),
        ({"sha256": 1}, "x.digests.sha256: expected a hexadecimal string"),
    ],
)
def test_rejects(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_digests(data, "x.digests")
    assert str(info.value).startswith(message)
