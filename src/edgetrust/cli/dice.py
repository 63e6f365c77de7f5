"""``edgetrust dice``: one Open DICE transition from the command line.

``edgetrust dice derive`` with no options runs Open DICE's zero-input known answer (current CDIs
0^32, code/config/authority/hidden 0^64, mode not-configured, Ed25519).
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from edgetrust.attest.dice import (
    CDI_SIZE,
    HASH_SIZE,
    HIDDEN_SIZE,
    INLINE_CONFIG_SIZE,
    ConfigType,
    DiceMode,
    InputValues,
    KeyAlg,
    main_flow,
)
from edgetrust.cli.reporting import emit_json, fail
from edgetrust.errors import Error

_MODES: dict[str, DiceMode] = {
    "not-configured": DiceMode.NOT_CONFIGURED,
    "normal": DiceMode.NORMAL,
    "debug": DiceMode.DEBUG,
    "recovery": DiceMode.RECOVERY,
}
_ALGS: dict[str, KeyAlg] = {alg.value: alg for alg in KeyAlg}


def _parse_hex(option: str, text: str) -> bytes:
    """Parse hex (``0x`` prefix and surrounding spaces allowed); one-line error and exit 2."""
    cleaned = text.strip().removeprefix("0x").removeprefix("0X")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        fail(f"{option} is not hexadecimal: {text!r}")


def _fixed(option: str, text: str | None, size: int) -> bytes:
    """A fixed-size hex input; zeros when the option is absent (Open DICE's unused value)."""
    if text is None:
        return bytes(size)
    value = _parse_hex(option, text)
    if len(value) != size:
        fail(f"{option} must be {size} bytes ({2 * size} hex digits), got {len(value)}")
    return value


def _choice(option: str, text: str, choices: Mapping[str, object]) -> None:
    if text.lower() not in choices:
        fail(f"{option} must be one of {', '.join(choices)}, got {text!r}")


@click.group()
def cli() -> None:
    """Open DICE derivation (CDIs, keys, IDs)."""


@cli.command()
@click.option("--cdi-attest", metavar="HEX", help="Current attestation CDI, 32 bytes [0^32].")
@click.option("--cdi-seal", metavar="HEX", help="Current sealing CDI, 32 bytes [0^32].")
@click.option("--code-hash", metavar="HEX", help="Code input, 64 bytes [0^64].")
@click.option("--config", "config_value", metavar="HEX", help="Inline config, 64 bytes [0^64].")
@click.option(
    "--config-descriptor",
    metavar="HEX",
    help="Config descriptor (any length; SHA-512 of it is the config input). Excludes --config.",
)
@click.option("--authority-hash", metavar="HEX", help="Authority input, 64 bytes [0^64].")
@click.option(
    "--mode",
    default="not-configured",
    show_default=True,
    metavar="[not-configured|normal|debug|recovery]",
    help="Mode decision.",
)
@click.option("--hidden", metavar="HEX", help="Hidden input, 64 bytes [0^64].")
@click.option(
    "--key-alg",
    default=KeyAlg.ED25519.value,
    show_default=True,
    metavar="[ed25519|p256]",
    help="Algorithm of the derived CDI key pair.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def derive(
    *,
    cdi_attest: str | None,
    cdi_seal: str | None,
    code_hash: str | None,
    config_value: str | None,
    config_descriptor: str | None,
    authority_hash: str | None,
    mode: str,
    hidden: str | None,
    key_alg: str,
    as_json: bool,
) -> None:
    """Derive the next CDIs, the CDI public key and its ID from the current CDIs and inputs.

    JSON: {"cdi_attest", "cdi_seal", "public_key", "id"} as hex; public_key is the raw 32-byte
    Ed25519 key or the uncompressed SEC1 P-256 point.
    """
    _choice("--mode", mode, _MODES)
    _choice("--key-alg", key_alg, _ALGS)
    if config_value is not None and config_descriptor is not None:
        fail("--config and --config-descriptor exclude each other")
    attest = _fixed("--cdi-attest", cdi_attest, CDI_SIZE)
    seal = _fixed("--cdi-seal", cdi_seal, CDI_SIZE)
    code = _fixed("--code-hash", code_hash, HASH_SIZE)
    authority = _fixed("--authority-hash", authority_hash, HASH_SIZE)
    hidden_input = _fixed("--hidden", hidden, HIDDEN_SIZE)
    if config_descriptor is not None:
        config_type = ConfigType.DESCRIPTOR
        inline, descriptor = None, _parse_hex("--config-descriptor", config_descriptor)
    else:
        config_type = ConfigType.INLINE
        inline, descriptor = _fixed("--config", config_value, INLINE_CONFIG_SIZE), None
    alg = _ALGS[key_alg.lower()]
    try:
        inputs = InputValues(
            code_hash=code,
            config_type=config_type,
            config_value=inline,
            config_descriptor=descriptor,
            authority_hash=authority,
            mode=_MODES[mode.lower()],
            hidden=hidden_input,
        )
        result = main_flow(attest, seal, inputs, alg)
    except Error as e:
        fail(e)

    if as_json:
        emit_json(
            {
                "cdi_attest": result.cdi_attest.hex(),
                "cdi_seal": result.cdi_seal.hex(),
                "public_key": result.subject_public_key.hex(),
                "id": result.subject_id.hex(),
            }
        )
        return
    rows = [
        ("mode", f"{inputs.mode.name.lower().replace('_', '-')} ({int(inputs.mode)})"),
        ("key algorithm", alg.value),
        ("next CDI_Attest", result.cdi_attest.hex()),
        ("next CDI_Seal", result.cdi_seal.hex()),
        ("CDI public key", result.subject_public_key.hex()),
        ("CDI ID", result.subject_id.hex()),
        ("authority ID", f"{result.authority_id.hex()} (key from the current CDI_Attest)"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label.ljust(width)}  {value}")
