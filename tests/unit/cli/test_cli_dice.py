"""``edgetrust dice derive``: known answers through the CLI, output shapes, one-line errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgetrust.attest.dice import (
    ConfigType,
    DiceMode,
    InputValues,
    KeyAlg,
    derive_cdis,
    derive_private_key,
    dice_id,
    public_key_bytes,
)
from edgetrust.cli.dice import cli

KAT = Path(__file__).resolve().parents[2] / "vectors" / "external" / "dice-open-dice-kat"
ZERO32 = "00" * 32
ZERO64 = "00" * 64
ED25519_SUBJECT = "0d14e5de292eb1c8b31beae43ab55d8e9dc014b73eaa83b925a0788cc62e5c8d"
ED25519_ID = "67c22a8859062b986818e8e72b0bcd9f59349c89"
P256_ID = "2e75b6e7230c20f2960bde4acf1288d4ab665b9b"

ZERO_ARGS = [
    "--cdi-attest", ZERO32, "--cdi-seal", ZERO32, "--code-hash", ZERO64, "--config", ZERO64,
    "--authority-hash", ZERO64, "--mode", "not-configured", "--hidden", ZERO64,
]  # fmt: skip


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["derive", *args])
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str) -> dict[str, str]:
    code, out, err = _run(*args, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("alg", ["ed25519", "p256"])
def test_zero_input_kat_through_the_cli(alg: str) -> None:
    data = _json(*ZERO_ARGS, "--key-alg", alg)
    assert list(data) == ["cdi_attest", "cdi_seal", "public_key", "id"]
    assert data["cdi_attest"] == (KAT / "cdi_attest_zero_input.bin").read_bytes().hex()
    assert data["cdi_seal"] == (KAT / "cdi_seal_zero_input.bin").read_bytes().hex()
    if alg == "ed25519":
        assert data["public_key"] == ED25519_SUBJECT
        assert data["id"] == ED25519_ID
    else:
        assert len(bytes.fromhex(data["public_key"])) == 65
        assert data["public_key"].startswith("044f3b4e82c45ada")
        assert data["id"] == P256_ID


def test_defaults_are_the_zero_input() -> None:
    assert _json() == _json(*ZERO_ARGS, "--key-alg", "ed25519")


def test_cli_agrees_with_the_library_on_other_inputs() -> None:
    cdi_a, cdi_s = bytes(range(32)), bytes(range(32, 64))
    code, config = hashlib.sha512(b"firmware").digest(), hashlib.sha512(b"config").digest()
    authority, hidden = hashlib.sha512(b"vendor key").digest(), b"\x07" * 64
    data = _json(
        "--cdi-attest", "0x" + cdi_a.hex(), "--cdi-seal", cdi_s.hex().upper(),
        "--code-hash", code.hex(), "--config", config.hex(), "--authority-hash", authority.hex(),
        "--mode", "debug", "--hidden", hidden.hex(), "--key-alg", "p256",
    )  # fmt: skip
    inputs = InputValues(
        code_hash=code,
        config_value=config,
        authority_hash=authority,
        mode=DiceMode.DEBUG,
        hidden=hidden,
    )
    attest, seal = derive_cdis(cdi_a, cdi_s, inputs)
    key = derive_private_key(attest, KeyAlg.P256)
    assert data == {
        "cdi_attest": attest.hex(),
        "cdi_seal": seal.hex(),
        "public_key": public_key_bytes(key).hex(),
        "id": dice_id(key).hex(),
    }


def test_config_descriptor_option() -> None:
    descriptor = b"bootloader v2"
    data = _json("--config-descriptor", descriptor.hex())
    inputs = InputValues(
        code_hash=bytes(64),
        config_type=ConfigType.DESCRIPTOR,
        config_descriptor=descriptor,
        mode=DiceMode.NOT_CONFIGURED,
    )
    assert data["cdi_attest"] == derive_cdis(bytes(32), bytes(32), inputs)[0].hex()


def test_human_output_names_every_value() -> None:
    code, out, _ = _run()
    assert code == 0
    assert "next CDI_Attest" in out
    assert ED25519_SUBJECT in out
    assert ED25519_ID in out
    assert "not-configured (0)" in out


def _assert_one_line_error(args: list[str], fragment: str) -> None:
    code, out, err = _run(*args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert fragment in lines[0]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--cdi-attest", "xyz"], "--cdi-attest is not hexadecimal"),
        (["--cdi-seal", "abc"], "--cdi-seal is not hexadecimal"),  # odd length
        (["--cdi-attest", "00" * 31], "--cdi-attest must be 32 bytes (64 hex digits), got 31"),
        (["--cdi-seal", "00" * 64], "--cdi-seal must be 32 bytes"),
        (["--code-hash", "00" * 32], "--code-hash must be 64 bytes (128 hex digits), got 32"),
        (["--config", "00"], "--config must be 64 bytes"),
        (["--authority-hash", ""], "--authority-hash must be 64 bytes"),
        (["--hidden", "00" * 65], "--hidden must be 64 bytes"),
        (["--config-descriptor", "0g"], "--config-descriptor is not hexadecimal"),
        (["--config", ZERO64, "--config-descriptor", "00"], "exclude each other"),
        (["--mode", "secure"], "--mode must be one of not-configured, normal, debug, recovery"),
        (["--key-alg", "p384"], "--key-alg must be one of ed25519, p256"),
    ],
    ids=[
        "cdi-attest-not-hex",
        "cdi-seal-odd-hex",
        "cdi-attest-short",
        "cdi-seal-long",
        "code-hash-short",
        "config-short",
        "authority-empty",
        "hidden-long",
        "descriptor-not-hex",
        "config-and-descriptor",
        "mode-unknown",
        "key-alg-unknown",
    ],
)
def test_bad_input_is_a_one_line_error_exit_2(args: list[str], fragment: str) -> None:
    _assert_one_line_error(args, fragment)


def test_installed_command_runs_the_kat() -> None:
    command = Path(sys.executable).with_name("edgetrust")
    if not command.exists():
        pytest.fail(f"console script missing next to the interpreter: {command}")
    proc = subprocess.run(
        [str(command), "dice", "derive", *ZERO_ARGS, "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == ED25519_ID

    bad = subprocess.run(
        [str(command), "dice", "derive", "--cdi-attest", "nothex"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == ["error: --cdi-attest is not hexadecimal: 'nothex'"]
