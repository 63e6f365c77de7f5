"""``edgetrust evidence ear-show / ear-verify`` through click's CliRunner: EARs made with the
library (JWT and CWT) and the one a real ``device onboard`` stores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.attest.ear import (
    DEVICE_SUBMOD,
    AttestationResult,
    Tier,
    TrustVector,
    b64url_decode,
    b64url_encode,
    sign_ear,
    sign_ear_cwt,
)
from edgetrust.attest.jws import sign_jws
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.cli.main import cli
from edgetrust.onboarding.workspace import init_workspace, write_config
from tests.integration.onboarding.conftest import TRUST_DOMAIN, start_verifier
from tests.integration.onboarding.fleet import Product, endorsements, make_device
from tests.unit.attest.ear_samples import NOW, sample_result

SHOW_KEYS = ["serialization", "media_type", "alg", "kid", "verified", "note", "result", "claims"]
VERIFY_KEYS = ["valid", "error", "serialization", "media_type", "result"]
RESULT_KEYS = [
    "profile", "status", "trust_vector", "verifier_id", "issued_at", "expires_at", "nonce",
    "submods",
]  # fmt: skip
SUBMOD_KEYS = [
    "status", "trust_vector", "policy_id", "reasons", "ueid", "product", "firmware_version",
]  # fmt: skip
VECTOR = {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 2}
VECTOR_TEXT = "instance-identity=2, configuration=2, executables=2, hardware=2"
SigningKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["evidence", *map(str, args)])
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _public_pem(key: SigningKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def _jwt(result: AttestationResult, key: SigningKey) -> bytes:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return sign_ear(result, key, kid="ear-1").encode("ascii")


def _cwt(result: AttestationResult, key: SigningKey) -> bytes:
    return sign_ear_cwt(result, key, kid="ear-1")


SIGNERS: dict[str, Callable[[AttestationResult, SigningKey], bytes]] = {"jwt": _jwt, "cwt": _cwt}


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(tmp_path: Path, token: bytes, name: str = "ear.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(token)
    return path


def _one_line_error(err: str) -> str:
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1
    return err


# ---- ear-verify: round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_verify_round_trip_json(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str
) -> None:
    expires = NOW + dt.timedelta(hours=1)
    token = SIGNERS[serialization](sample_result(expires_at=expires), key)
    pem = _public_pem(key, tmp_path / "ear-public.pem")
    code, out, err = invoke(
        "ear-verify", _write(tmp_path, token), "--key", pem, "--now", NOW.isoformat(), "--json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert list(report) == VERIFY_KEYS
    assert report["valid"] is True
    assert report["error"] is None
    assert report["serialization"] == serialization
    assert report["media_type"].startswith(f"application/eat+{serialization};")
    result = report["result"]
    assert list(result) == RESULT_KEYS
    assert result["status"] == "affirming"
    assert result["trust_vector"] == VECTOR
    assert result["verifier_id"] == {"developer": "edgetrust", "build": "0.1.0"}
    assert result["issued_at"] == "2025-06-01T12:00:00+00:00"
    assert result["expires_at"] == "2025-06-01T13:00:00+00:00"
    assert result["nonce"] == "07" * 32
    assert list(result["submods"]) == [DEVICE_SUBMOD]
    device = result["submods"][DEVICE_SUBMOD]
    assert list(device) == SUBMOD_KEYS
    assert device == {
        "status": "affirming",
        "trust_vector": VECTOR,
        "policy_id": "edgetrust/default",
        "reasons": [],
        "ueid": "01" + "00" * 16,
        "product": "edgetrust-sim",
        "firmware_version": "1.0.0",
    }


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_verify_text(tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str) -> None:
    token = SIGNERS[serialization](sample_result(), key)
    pem = _public_pem(key, tmp_path / "k.pem")
    code, out, _ = invoke("ear-verify", _write(tmp_path, token), "--key", pem)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"valid: {serialization.upper()} EAR, signature and claims verified"
    assert "status:        affirming" in lines
    assert "trust vector:  instance-identity=2, configuration=2, executables=2, hardware=2" in lines
    assert "verifier-id:   edgetrust (build 0.1.0)" in lines
    assert "iat:           2025-06-01T12:00:00+00:00" in lines
    assert "exp:           none" in lines
    assert f"  device: affirming [{VECTOR_TEXT}]" in lines
    assert "    product=edgetrust-sim firmware_version=1.0.0 ueid=01" + "00" * 16 in lines


@pytest.mark.parametrize(
    "signer",
    [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP384R1())],
    ids=["EdDSA", "ES384"],
)
def test_verify_cwt_other_algorithms(tmp_path: Path, signer: Callable[[], SigningKey]) -> None:
    key = signer()
    token = sign_ear_cwt(sample_result(), key)
    code, out, err = invoke(
        "ear-verify", _write(tmp_path, token), "--key", _public_pem(key, tmp_path / "k.pem")
    )
    assert code == 0, err
    assert out.startswith("valid: CWT EAR")


def test_verify_cwt_with_the_cwt_tag_and_as_hex_text(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign_ear_cwt(sample_result(), key)
    assert token[:1] == b"\xd2"  # tag 18
    pem = _public_pem(key, tmp_path / "k.pem")
    tagged = _write(tmp_path, b"\xd8\x3d" + token, "tagged.cbor")  # tag 61 around tag 18
    assert invoke("ear-verify", tagged, "--key", pem)[0] == 0
    untagged = _write(tmp_path, token[1:], "untagged.cbor")  # a bare array of four
    assert invoke("ear-verify", untagged, "--key", pem)[0] == 0
    hex_file = _write(tmp_path, token.hex().encode() + b"\n", "ear.hex")
    assert invoke("ear-verify", hex_file, "--key", pem)[0] == 0


def test_verify_jwt_with_a_trailing_newline_and_a_certificate_key(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(subject="CN=EAR signer")
    key = ca.root_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = tmp_path / "ear-cert.pem"
    cert.write_bytes(ca.anchor.public_bytes(serialization.Encoding.PEM))
    ear = _write(tmp_path, sign_ear(sample_result(), key).encode() + b"\n")
    code, out, err = invoke("ear-verify", ear, "--key", cert)
    assert code == 0, err
    assert out.startswith("valid: JWT EAR")


def test_verify_a_warning_result_is_valid_exit_0_and_says_so(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    warning = dataclasses.replace(
        sample_result().device,
        status=Tier.WARNING,
        trust_vector=TrustVector(instance_identity=2, executables=33),
        reasons=("unrecognized_runtime:application",),
    )
    token = sign_ear(sample_result(submods={DEVICE_SUBMOD: warning}), key)
    pem = _public_pem(key, tmp_path / "k.pem")
    code, out, _ = invoke("ear-verify", _write(tmp_path, token.encode()), "--key", pem)
    assert code == 0
    assert "status:        warning (not affirming: not an admission)" in out.splitlines()
    assert "    reasons: unrecognized_runtime:application" in out.splitlines()
    code, out, _ = invoke("ear-verify", tmp_path / "ear.bin", "--key", pem, "--json")
    assert json.loads(out)["result"]["status"] == "warning"


# ---- ear-verify: invalid (exit 1) ----------------------------------------------------------------


def _invalid(*args: str | Path) -> dict[str, object]:
    code, out, err = invoke(*args, "--json")
    assert code == 1, (out, err)
    assert err == ""
    report = json.loads(out)
    assert list(report) == VERIFY_KEYS
    assert report["valid"] is False
    assert report["result"] is None
    return report


def test_verify_tampered_jwt_payload_is_exit_1(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    header, payload, signature = sign_ear(sample_result(), key).split(".")
    claims = json.loads(b64url_decode(payload))
    claims["submods"]["device"]["ear.status"] = "affirming"
    claims["iat"] += 1
    forged = ".".join([header, b64url_encode(json.dumps(claims).encode()), signature])
    ear = _write(tmp_path, forged.encode())
    pem = _public_pem(key, tmp_path / "k.pem")
    report = _invalid("ear-verify", ear, "--key", pem)
    assert report["error"] == "JWS signature does not verify with the given key"
    assert report["serialization"] == "jwt"
    code, out, err = invoke("ear-verify", ear, "--key", pem)
    assert (code, out, err) == (
        1,
        "invalid: JWS signature does not verify with the given key\n",
        "",
    )


def test_verify_tampered_cwt_signature_is_exit_1(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    token = bytearray(sign_ear_cwt(sample_result(), key))
    token[-1] ^= 0x01
    report = _invalid(
        "ear-verify", _write(tmp_path, bytes(token)), "--key", _public_pem(key, tmp_path / "k.pem")
    )
    assert report["serialization"] == "cwt"
    assert "signature" in str(report["error"])


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_verify_wrong_key_is_exit_1(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str
) -> None:
    token = SIGNERS[serialization](sample_result(), key)
    other = _public_pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "other.pem")
    report = _invalid("ear-verify", _write(tmp_path, token), "--key", other)
    assert "does not verify" in str(report["error"])


def test_verify_jwt_with_an_ed25519_key_is_exit_1(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    other = _public_pem(ed25519.Ed25519PrivateKey.generate(), tmp_path / "ed.pem")
    report = _invalid("ear-verify", _write(tmp_path, _jwt(sample_result(), key)), "--key", other)
    assert report["error"] == "a JWT EAR is signed with ES256 or ES384: the key must be EC"


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_verify_expired_is_exit_1_and_valid_before(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str
) -> None:
    expires = NOW + dt.timedelta(minutes=10)
    ear = _write(tmp_path, SIGNERS[serialization](sample_result(expires_at=expires), key))
    pem = _public_pem(key, tmp_path / "k.pem")
    report = _invalid("ear-verify", ear, "--key", pem, "--now", "2025-06-01T12:10:00Z")
    assert report["error"] == "EAR expired at 2025-06-01T12:10:00+00:00"
    # --at is the spelling of `evidence verify`; a naive instant is UTC.
    assert invoke("ear-verify", ear, "--key", pem, "--at", "2025-06-01T12:09:59")[0] == 0
    _invalid("ear-verify", ear, "--key", pem)  # now: long after


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_verify_issued_in_the_future_is_exit_1_and_valid_within_60_s(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str
) -> None:
    ear = _write(tmp_path, SIGNERS[serialization](sample_result(), key))
    pem = _public_pem(key, tmp_path / "k.pem")
    report = _invalid("ear-verify", ear, "--key", pem, "--now", "2025-06-01T11:58:59Z")
    assert report["error"] == (
        "EAR issued in the future: iat 2025-06-01T12:00:00+00:00 is more than 60 s after "
        "now 2025-06-01T11:58:59+00:00"
    )
    assert invoke("ear-verify", ear, "--key", pem, "--now", "2025-06-01T11:59:00Z")[0] == 0


def test_verify_claims_that_are_not_an_ear_is_exit_1(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign_jws({"eat_profile": "tag:example.org,2025:other", "iat": 1}, key)
    report = _invalid(
        "ear-verify", _write(tmp_path, token.encode()), "--key", _public_pem(key, tmp_path / "k")
    )
    assert str(report["error"]).startswith("eat_profile is 'tag:example.org,2025:other'")


# ---- unusable input (exit 2) ---------------------------------------------------------------------


@pytest.mark.parametrize("command", ["ear-show", "ear-verify"])
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\x02 random garbage \xff", "not an EAR: neither a JWT"),
        (b"hello world\n", "not an EAR: neither a JWT"),
        (b"", "is empty"),
    ],
    ids=["binary", "text", "empty"],
)
def test_garbage_file_is_exit_2(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, command: str, content: bytes, message: str
) -> None:
    extra = ["--key", str(_public_pem(key, tmp_path / "k.pem"))] if command == "ear-verify" else []
    code, out, err = invoke(command, _write(tmp_path, content), *extra)
    assert (code, out) == (2, "")
    assert message in _one_line_error(err)


@pytest.mark.parametrize("command", ["ear-show", "ear-verify"])
def test_missing_file_is_exit_2(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, command: str
) -> None:
    extra = ["--key", str(_public_pem(key, tmp_path / "k.pem"))] if command == "ear-verify" else []
    code, _, err = invoke(command, tmp_path / "nope.bin", *extra)
    assert code == 2
    assert _one_line_error(err).startswith("error: cannot read token file ")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read key file"),
        (b"not a key\n", "error: "),
        (bytes(range(32)), "an EAR is verified with an EC (P-256, P-384) or Ed25519 public key"),
    ],
    ids=["missing", "text", "hmac-bytes"],
)
def test_unusable_key_is_exit_2(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, content: bytes | None, message: str
) -> None:
    key_file = tmp_path / "key"
    if content is not None:
        key_file.write_bytes(content)
    ear = _write(tmp_path, _jwt(sample_result(), key))
    code, out, err = invoke("ear-verify", ear, "--key", key_file)
    assert (code, out) == (2, "")
    assert message in _one_line_error(err)


def test_bad_now_is_exit_2(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    ear = _write(tmp_path, _jwt(sample_result(), key))
    pem = _public_pem(key, tmp_path / "k.pem")
    code, _, err = invoke("ear-verify", ear, "--key", pem, "--now", "yesterday")
    assert code == 2
    assert _one_line_error(err) == "error: --now is not an ISO 8601 date-time: 'yesterday'\n"


# ---- ear-show ------------------------------------------------------------------------------------


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_show_json_is_unverified(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str
) -> None:
    token = SIGNERS[serialization](sample_result(), key)
    code, out, err = invoke("ear-show", _write(tmp_path, token), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert list(report) == SHOW_KEYS
    assert report["verified"] is False
    assert report["note"] is None
    assert report["alg"] == "ES256"
    assert report["kid"] == ("ear-1" if serialization == "jwt" else b"ear-1".hex())
    assert list(report["result"]) == RESULT_KEYS
    assert report["result"]["status"] == "affirming"
    assert report["result"]["trust_vector"] == VECTOR
    claims = report["claims"]
    if serialization == "jwt":
        assert claims["eat_profile"] == "tag:github.com,2023:veraison/ear"
        assert claims["submods"]["device"]["ear.status"] == "affirming"
    else:
        assert claims["265"] == "tag:github.com,2023:veraison/ear"
        assert claims["10"] == "07" * 32
        assert claims["266"]["device"]["1000"] == 2


@pytest.mark.parametrize("serialization", ["jwt", "cwt"])
def test_show_text_is_labelled_unverified(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey, serialization: str
) -> None:
    token = SIGNERS[serialization](sample_result(), key)
    code, out, _ = invoke("ear-show", _write(tmp_path, token))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "UNVERIFIED: signature not checked (use `edgetrust evidence ear-verify`)"
    assert lines[1].startswith(f"serialization: {serialization} alg=ES256 kid=")
    assert "status:        affirming" in lines


def test_show_does_not_check_the_signature(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    header, payload, _ = sign_ear(sample_result(), key).split(".")
    ear = _write(tmp_path, f"{header}.{payload}.{b64url_encode(b'not a signature')}".encode())
    code, out, _ = invoke("ear-show", ear, "--json")
    assert code == 0
    assert json.loads(out)["result"]["status"] == "affirming"


def test_show_claims_that_are_not_an_ear_notes_it(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    token = sign_jws({"eat_profile": "tag:example.org,2025:other", "iat": 1}, key)
    ear = _write(tmp_path, token.encode())
    code, out, _ = invoke("ear-show", ear, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["result"] is None
    assert str(report["note"]).startswith("not a valid EAR claims set: eat_profile is")
    assert report["claims"] == {"eat_profile": "tag:example.org,2025:other", "iat": 1}
    code, out, _ = invoke("ear-show", ear)
    assert "  eat_profile: tag:example.org,2025:other" in out.splitlines()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"e30.!!!.e30", "cannot decode the EAR as a JWT: JWS payload is not unpadded base64url"),
        (b"\xd2\x84\x40", "cannot decode the EAR as a CWT: "),
    ],
    ids=["jwt", "cwt"],
)
def test_show_undecodable_is_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    code, out, err = invoke("ear-show", _write(tmp_path, content))
    assert (code, out) == (2, "")
    assert message in _one_line_error(err)


# ---- the EAR a real `device onboard` stores ------------------------------------------------------


def test_verify_the_ear_device_onboard_stores(tmp_path: Path) -> None:
    manufacturer = CertificateAuthority.create()
    workspace = init_workspace(tmp_path / "verifier")
    write_config(workspace, listen="127.0.0.1:0", feed_listen="", trust_domain=TRUST_DOMAIN)
    manifest = make_device(tmp_path / "device", manufacturer)
    running = start_verifier(workspace.root, bundle=endorsements(manufacturer, [Product()]))
    try:
        onboard = CliRunner().invoke(
            cli,
            [
                "device", "onboard", str(tmp_path / "device"), "--verifier", running.address,
                "--ca", str(workspace.root / "cluster-ca" / "root-cert.pem"),
            ],
        )  # fmt: skip
    finally:
        running.close()
    assert onboard.exit_code == 0, onboard.output
    ear = tmp_path / "device" / "operational" / "ear.bin"
    code, out, err = invoke("ear-verify", ear, "--key", workspace.ear_public_file, "--json")
    assert code == 0, err
    result = json.loads(out)["result"]
    assert json.loads(out)["serialization"] == "jwt"
    assert result["status"] == "affirming"
    assert result["submods"]["device"]["ueid"] == manifest.ueid.hex()
    # the verifier's own signing key file works too (its public half is used)
    assert invoke("ear-verify", ear, "--key", workspace.ear_key_file)[0] == 0
    stranger = _public_pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "stranger.pem")
    assert invoke("ear-verify", ear, "--key", stranger)[0] == 1
    shutil.copy(ear, tmp_path / "copy.bin")
    assert invoke("ear-show", tmp_path / "copy.bin")[1].startswith("UNVERIFIED")
