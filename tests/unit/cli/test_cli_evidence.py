"""``edgetrust evidence show / verify / make`` through click's CliRunner."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import eat
from edgetrust.cli.main import cli

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "external"
PSA = VECTORS / "psa-rfc9783"
TFM = VECTORS / "psa-tfm-iat-verifier"
NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
NONCE = bytes(range(32))
VERIFY_KEYS = ["valid", "error", "scheme", "profile", "claims"]


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["evidence", *map(str, args)])
    assert "Traceback" not in result.output + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


def _pem(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    claims = eat.EatClaims(
        eat_profile="tag:example.org,2025:test",
        nonce=NONCE,
        ueid=b"\x01" + bytes(16),
        iat=int(NOW.timestamp()),
        exp=int(NOW.timestamp()) + 60,
        hwmodel=b"gadget",
        dbgstat=eat.DebugStatus.DISABLED,
    )
    token = tmp_path / "token.cbor"
    token.write_bytes(eat.make_eat(claims, key))
    return token, _pem(key, tmp_path / "key.pem"), key


# ---- verify -----------------------------------------------------------------------------------


def test_verify_valid_token_json(signed: tuple[Path, Path, ec.EllipticCurvePrivateKey]) -> None:
    token, key, _ = signed
    code, out, _ = invoke(
        "verify", token, "--key", key, "--nonce", NONCE.hex(), "--at", NOW.isoformat(), "--json"
    )
    assert code == 0
    verdict = json.loads(out)
    assert list(verdict) == VERIFY_KEYS
    assert verdict["valid"] is True
    assert verdict["error"] is None
    assert verdict["scheme"] == "eat"
    assert verdict["profile"] == "tag:example.org,2025:test"
    assert verdict["claims"]["eat_nonce"] == NONCE.hex()
    assert verdict["claims"]["hwmodel"] == b"gadget".hex()


def test_verify_human_output(signed: tuple[Path, Path, ec.EllipticCurvePrivateKey]) -> None:
    token, key, _ = signed
    code, out, _ = invoke("verify", token, "--key", key, "--at", NOW.isoformat())
    assert code == 0
    assert out.startswith("valid: eat token")


def test_verify_wrong_key_exit_1(
    signed: tuple[Path, Path, ec.EllipticCurvePrivateKey], tmp_path: Path
) -> None:
    token, _, _ = signed
    other = _pem(ec.generate_private_key(ec.SECP256R1()), tmp_path / "other.pem")
    code, out, _ = invoke("verify", token, "--key", other, "--at", NOW.isoformat(), "--json")
    assert code == 1
    verdict = json.loads(out)
    assert list(verdict) == VERIFY_KEYS
    assert verdict["valid"] is False
    assert "signature" in verdict["error"]
    assert verdict["claims"] == {}


def test_verify_wrong_nonce_exit_1(signed: tuple[Path, Path, ec.EllipticCurvePrivateKey]) -> None:
    token, key, _ = signed
    code, out, _ = invoke(
        "verify", token, "--key", key, "--nonce", "ff" * 32, "--at", NOW.isoformat()
    )
    assert code == 1
    assert out.startswith("invalid: ")
    assert "nonce" in out
    assert len(out.strip().splitlines()) == 1


def test_verify_expired_exit_1(signed: tuple[Path, Path, ec.EllipticCurvePrivateKey]) -> None:
    token, key, _ = signed
    later = (NOW + dt.timedelta(hours=1)).isoformat()
    code, out, _ = invoke("verify", token, "--key", key, "--at", later)
    assert code == 1
    assert "expired" in out


def test_verify_garbage_token_exit_2(tmp_path: Path, signed: tuple[Path, Path, object]) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\xffthis is not a token\x01")
    code, out, err = invoke("verify", garbage, "--key", signed[1], "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) == 1


def test_verify_garbage_key_exit_2(signed: tuple[Path, Path, object], tmp_path: Path) -> None:
    key = tmp_path / "key.txt"
    key.write_text("not a key at all\n")
    code, _, err = invoke("verify", signed[0], "--key", key)
    assert code == 2
    assert err.startswith("error: ")
    assert "Traceback" not in err


def test_verify_missing_file_exit_2(tmp_path: Path) -> None:
    code, _, err = invoke("verify", tmp_path / "absent.cbor", "--key", tmp_path / "absent.pem")
    assert code == 2
    assert "cannot read token file" in err


def test_verify_bad_nonce_hex_exit_2(signed: tuple[Path, Path, object]) -> None:
    code, _, _ = invoke("verify", signed[0], "--key", signed[1], "--nonce", "xyz")
    assert code == 2


def test_verify_bad_time_exit_2(signed: tuple[Path, Path, object]) -> None:
    code, _, err = invoke("verify", signed[0], "--key", signed[1], "--at", "yesterday")
    assert code == 2
    assert "ISO 8601" in err


def test_psa_rfc9783_vector_verifies_with_its_key() -> None:
    code, out, _ = invoke(
        "verify", PSA / "psa-sign1.cbor", "--key", PSA / "tfm-es-iak.pem", "--nonce", "01" * 32,
        "--json",
    )  # fmt: skip
    assert code == 0
    verdict = json.loads(out)
    assert verdict["valid"] is True
    assert verdict["scheme"] == "psa"
    assert verdict["profile"] == "tag:psacertified.org,2023:psa#tfm"


def test_psa_rfc9783_vector_with_jwk_key() -> None:
    code, _, _ = invoke("verify", PSA / "psa-sign1.cbor", "--key", PSA / "tfm-es-iak.json")
    assert code == 0


def test_psa_mac0_vector_hex_file_and_raw_hmac_key() -> None:
    code, out, _ = invoke("verify", PSA / "psa-mac0.hex", "--key", PSA / "tfm-hs-iak.bin")
    assert code == 0, out


def test_tfm_iat_wrong_key_exit_1() -> None:
    code, _, _ = invoke("verify", TFM / "iat.cbor", "--key", TFM / "key-alt.pem")
    assert code == 1


# ---- show -------------------------------------------------------------------------------------


def test_show_json(signed: tuple[Path, Path, object]) -> None:
    code, out, _ = invoke("show", signed[0], "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["verified"] is False
    assert shown["structure"] == "COSE_Sign1"
    assert shown["alg"] == "ES256"
    assert shown["claims"]["eat_profile"] == "tag:example.org,2025:test"
    assert shown["claims"]["dbgstat"] == 1


def test_show_psa_human() -> None:
    code, out, _ = invoke("show", PSA / "psa-sign1.cbor")
    assert code == 0
    assert "scheme:    psa" in out
    assert "psa-implementation-id" in out


def test_show_garbage_exit_2(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\xff\xfe")
    code, _, err = invoke("show", garbage)
    assert code == 2
    assert err.startswith("error: ")
