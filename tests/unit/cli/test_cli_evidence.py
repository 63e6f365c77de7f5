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


# ---- make -------------------------------------------------------------------------------------


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    files = {
        "uds": b"\x5a" * 32,
        "bootloader": b"bootloader image",
        "firmware": b"firmware image",
        "model": b"model weights",
    }
    out = {}
    for name, data in files.items():
        out[name] = tmp_path / f"{name}.bin"
        out[name].write_bytes(data)
    return out


def _make(images: dict[str, Path], out: Path, *extra: str) -> tuple[int, str, str]:
    return invoke(
        "make", "--uds-file", images["uds"], "--layer", f"bootloader={images['bootloader']}",
        "--layer", f"firmware={images['firmware']}", "--component", f"model={images['model']}",
        "--svn", "bootloader=2", "--svn", "firmware=3", "--nonce", NONCE.hex(),
        "--at", NOW.isoformat(), "--out", out, *extra,
    )  # fmt: skip


def test_make_then_verify_with_chain_leaf(images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out" / "token.cbor"
    out.parent.mkdir()
    code, stdout, _ = _make(images, out, "--json")
    assert code == 0
    written = json.loads(stdout)
    assert written["nonce"] == NONCE.hex()
    for name in ("token", "chain", "leaf", "root", "tls_key"):
        assert Path(written[name]).exists(), name
    assert (out.parent / "tls-key.pem").stat().st_mode & 0o077 == 0
    code, stdout, _ = invoke(
        "verify", out, "--key", out.parent / "chain-leaf.pem", "--nonce", NONCE.hex(),
        "--at", NOW.isoformat(), "--json",
    )  # fmt: skip
    assert code == 0
    verdict = json.loads(stdout)
    assert list(verdict) == VERIFY_KEYS
    assert verdict["scheme"] == "edgetrust-device-eat"
    assert verdict["profile"] == eat.DEVICE_PROFILE
    names = [m["name"] for m in verdict["claims"]["measurements"]]
    assert names == ["bootloader", "firmware", "model"]
    # the root is not the signer
    code, _, _ = invoke("verify", out, "--key", out.parent / "root.pem", "--at", NOW.isoformat())
    assert code == 1


def test_made_token_appraises_affirming(images: dict[str, Path], tmp_path: Path) -> None:
    from edgetrust.attest.appraisal import appraise
    from edgetrust.attest.reference import (
        DigestAlgorithm,
        FirmwareReference,
        LayerReference,
        ProductReference,
        ReferenceValues,
    )
    from edgetrust.certs.loading import read_certificates, read_trust_anchors

    out = tmp_path / "token.cbor"
    assert _make(images, out)[0] == 0
    algs = (DigestAlgorithm.SHA256, DigestAlgorithm.SHA384)
    refs = ReferenceValues(
        products=(
            ProductReference(
                product="edgetrust-sim",
                oemid=bytes.fromhex("ed9e75"),
                svn_min={"bootloader": 2, "firmware": 3},
                firmware=(
                    FirmwareReference(
                        version="1.0.0",
                        layers=(
                            LayerReference.of_code(
                                "bootloader", images["bootloader"].read_bytes(), algorithms=algs
                            ),
                            LayerReference.of_code(
                                "firmware", images["firmware"].read_bytes(), algorithms=algs
                            ),
                            LayerReference.of_code(
                                "model", images["model"].read_bytes(), dice=False
                            ),
                        ),
                    ),
                ),
            ),
        )
    )
    result = appraise(
        chain_certs=read_certificates(tmp_path / "chain.pem"),
        token=out.read_bytes(),
        anchors=read_trust_anchors(tmp_path / "root.pem"),
        reference_values=refs,
        expected_nonce=NONCE,
        now=NOW + dt.timedelta(seconds=1),
    )
    assert result.reasons == ()
    assert result.affirming


def test_make_debug_is_refused_by_appraisal_flags(images: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "token.cbor"
    assert _make(images, out, "--debug")[0] == 0
    code, stdout, _ = invoke("show", out, "--json")
    assert code == 0
    assert json.loads(stdout)["claims"]["dbgstat"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one of --device DIR and --uds-file FILE"),
        (["--device", "x", "--uds-file", "y"], "exactly one of --device"),
        (["--uds-file", "{uds}"], "at least one --layer"),
        (["--uds-file", "{uds}", "--layer", "bootloader"], "--layer expects NAME=VALUE"),
        (["--uds-file", "{uds}", "--layer", "b={tmp}/absent.bin"], "cannot read layer b file"),
        (["--uds-file", "{tmp}/absent", "--layer", "b={uds}"], "cannot read UDS file"),
    ],
)
def test_make_usage_errors_exit_2(
    images: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    filled = [a.format(uds=images["uds"], tmp=tmp_path) for a in args]
    code, _, err = invoke("make", *filled, "--out", tmp_path / "t.cbor")
    assert code == 2
    assert message in err
    assert err.startswith("error: ")


def test_make_bad_uds_length_exit_2(tmp_path: Path, images: dict[str, Path]) -> None:
    short = tmp_path / "short.bin"
    short.write_bytes(b"\x01" * 7)
    code, _, err = invoke(
        "make", "--uds-file", short, "--layer", f"b={images['bootloader']}", "--out",
        tmp_path / "t.cbor",
    )  # fmt: skip
    assert code == 2
    assert "UDS" in err


def test_make_from_device_directory(images: dict[str, Path], tmp_path: Path) -> None:
    from edgetrust.attest.identity import DeviceIdentity
    from edgetrust.certs.builders import build_device_id_certificate
    from edgetrust.certs.ca import CertificateAuthority
    from edgetrust.certs.loading import write_certificates
    from edgetrust.onboarding.device import ComponentFile, DeviceManifest, LayerFile

    device = tmp_path / "device"
    (device / "firmware").mkdir(parents=True)
    (device / "components").mkdir()
    uds = images["uds"].read_bytes()
    (device / "uds.bin").write_bytes(uds)
    (device / "uds.bin").chmod(0o600)
    for name in ("bootloader", "firmware"):
        (device / "firmware" / f"{name}.bin").write_bytes(images[name].read_bytes())
    (device / "components" / "model.bin").write_bytes(images["model"].read_bytes())
    identity = DeviceIdentity.from_uds(uds)
    ca = CertificateAuthority.create(now=NOW - dt.timedelta(days=1))
    device_id = build_device_id_certificate(
        csr=identity.device_id_csr(),
        issuer=ca,
        ueid=identity.ueid,
        not_before=NOW - dt.timedelta(days=1),
        not_after=NOW + dt.timedelta(days=365),
    )
    write_certificates(device / "device-id.pem", [device_id])
    DeviceManifest(
        ueid=identity.ueid,
        product="edgetrust-sim",
        firmware_version="1.0.0",
        oemid=bytes.fromhex("ed9e75"),
        layers=(
            LayerFile(name="bootloader", file="firmware/bootloader.bin", version="1", svn=1),
            LayerFile(name="firmware", file="firmware/firmware.bin", version="1", svn=1),
        ),
        components=(ComponentFile(name="model", file="components/model.bin", version="1"),),
    ).save(device)
    out = tmp_path / "token.cbor"
    code, _, err = invoke(
        "make", "--device", device, "--nonce", NONCE.hex(), "--at", NOW.isoformat(), "--out", out
    )
    assert code == 0, err
    code, stdout, _ = invoke(
        "verify", out, "--key", tmp_path / "chain-leaf.pem", "--nonce", NONCE.hex(),
        "--at", NOW.isoformat(), "--json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(stdout)["claims"]["ueid"] == identity.ueid.hex()
