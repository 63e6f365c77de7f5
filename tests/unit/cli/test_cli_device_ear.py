"""The EAR summary of ``edgetrust device onboard`` (cli/device.py) for EARs made with the library:
a CWT EAR is summarised exactly like the JWT EAR of the same result (the verifier sends JWTs; the
real onboarding and its JSON keys are checked in test_cli_ear.py and the integration tests)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from edgetrust.attest.ear import sign_ear, sign_ear_cwt
from edgetrust.cli.device import _ear_summary, _report
from edgetrust.errors import KeyFileError
from edgetrust.onboarding.device import OnboardingResult
from tests.unit.attest.ear_samples import sample_result

SUMMARY_KEYS = [
    "status", "verified", "trust_vector", "reasons", "product", "firmware_version", "issued_at",
    "verifier",
]  # fmt: skip
P256 = ec.generate_private_key(ec.SECP256R1())
ED25519 = ed25519.Ed25519PrivateKey.generate()


def _public_pem(key: PrivateKeyTypes, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _expected(*, verified: bool) -> dict[str, Any]:
    return {
        "status": "affirming",
        "verified": verified,
        "trust_vector": {
            "instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2,
        },
        "reasons": [],
        "product": "edgetrust-sim",
        "firmware_version": "1.0.0",
        "issued_at": "2025-06-01T12:00:00+00:00",
        "verifier": {"developer": "edgetrust", "build": "0.1.0"},
    }  # fmt: skip


def test_a_cwt_ear_is_summarised_like_the_jwt_ear_of_the_same_result() -> None:
    result = sample_result()
    jwt = _ear_summary(sign_ear(result, P256).encode("ascii"), None)
    cwt = _ear_summary(sign_ear_cwt(result, P256), None)
    assert list(jwt) == SUMMARY_KEYS
    assert jwt == cwt == _expected(verified=False)


@pytest.mark.parametrize("signer", [P256, ED25519], ids=["es256", "eddsa"])
def test_a_cwt_ear_is_verified_with_the_ear_key(tmp_path: Path, signer: PrivateKeyTypes) -> None:
    assert isinstance(signer, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    token = sign_ear_cwt(sample_result(), signer)
    summary = _ear_summary(token, _public_pem(signer, tmp_path / "ear-public.pem"))
    assert summary == _expected(verified=True)


def test_a_cwt_ear_with_the_wrong_key_is_undecodable(tmp_path: Path) -> None:
    token = sign_ear_cwt(sample_result(), P256)
    stranger = _public_pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "stranger.pem")
    summary = _ear_summary(token, stranger)
    assert list(summary) == ["ear"]
    assert summary["ear"].startswith("undecodable: ")


def test_a_jwt_ear_with_an_ed25519_key_is_a_key_file_error(tmp_path: Path) -> None:
    token = sign_ear(sample_result(), P256).encode("ascii")
    with pytest.raises(KeyFileError, match="the EAR key must be an EC public key"):
        _ear_summary(token, _public_pem(ED25519, tmp_path / "ed.pem"))


def test_bytes_that_are_no_ear_are_undecodable() -> None:
    summary = _ear_summary(b"\x00garbage", None)
    assert summary == {
        "ear": "undecodable: not an EAR: neither a JWT (ASCII text with two dots) nor a CWT "
        "(CBOR COSE_Sign1, optionally tagged 61/18)"
    }


def test_no_ear_is_an_empty_summary() -> None:
    assert _ear_summary(b"", None) == {}


def test_the_onboard_report_carries_a_cwt_ear(tmp_path: Path) -> None:
    device = SimpleNamespace(directory=tmp_path / "device", ueid=b"\x01" + bytes(16))
    refused = OnboardingResult(
        affirmed=False,
        tier="warning",
        reasons=("svn_below_minimum:firmware",),
        ear=sign_ear_cwt(sample_result(), P256),
    )
    report = _report(device, refused, None)  # type: ignore[arg-type]
    assert list(report) == ["device", "ueid", "onboarded", "tier", "reasons", "ear"]
    assert report["ear"] == _expected(verified=False)
