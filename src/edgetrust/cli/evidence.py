"""``edgetrust evidence``: make, show and verify EAT / PSA tokens.

* ``show TOKEN [--json]`` decodes a token (not verified!) and prints its claims by their
  registered names. The scheme comes from ``--media-type`` or is detected from the token.
* ``verify TOKEN --key FILE [--nonce HEX] [--at ISO8601] [--json]`` verifies signature/MAC,
  claims, nonce and time. FILE is a PEM/DER public key or certificate, a JWK, a COSE_Key or raw
  HMAC key bytes. ``--json`` prints exactly
  ``{"valid": bool, "error": str|null, "scheme": str, "profile": str|null, "claims": {...}}``
  (claims only for a valid token). Exit 0 valid, 1 invalid, 2 unusable input (unreadable files,
  no token at all, an unusable key), with a one-line reason.
* ``make`` boots a simulated device (attest.identity) and writes an EAT of our device profile
  signed by the leaf alias key, plus the certificate chain next to it.

A TOKEN file holds the token's bytes, or the same bytes as hexadecimal text.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import click

from edgetrust.attest import cose, schemes
from edgetrust.attest.keys import load_verification_key
from edgetrust.cli.reporting import EXIT_INVALID, EXIT_OK, emit_json, fail, hexbytes
from edgetrust.errors import ConfigError, EvidenceError

_HEX_TEXT = re.compile(rb"\s*(?:[0-9a-fA-F]{2}\s*)+")
_MAX_INPUT = 1 << 20


def read_token(path: str) -> bytes:
    """A token from a file: raw bytes, or hexadecimal text. Unreadable -> exit 2."""
    data = _read(path, "token")
    if _HEX_TEXT.fullmatch(data):
        return bytes.fromhex(data.decode("ascii"))
    return data


def _read(path: str, what: str) -> bytes:
    file = Path(path)
    try:
        if file.stat().st_size > _MAX_INPUT:
            fail(f"{what} file {path} is larger than {_MAX_INPUT} bytes")
        data = file.read_bytes()
    except OSError as e:
        fail(f"cannot read {what} file {path}: {e.strerror or e}")
    if not data:
        fail(f"{what} file {path} is empty")
    return data


def _parse_time(text: str | None) -> dt.datetime:
    if text is None:
        return dt.datetime.now(dt.UTC)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        fail(f"--at is not an ISO 8601 date-time: {text!r}")
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _scheme(token: bytes, media_type: str | None) -> schemes.EvidenceScheme:
    """The token's scheme; no scheme (not a token at all) is unusable input -> exit 2."""
    try:
        if media_type is not None:
            return schemes.scheme_for(media_type)
        return schemes.detect_scheme(token)
    except EvidenceError as e:
        fail(f"not a supported token: {e.message}")


def _structure(message: cose.Sign1Message | cose.Mac0Message) -> dict[str, Any]:
    kind = "COSE_Sign1" if isinstance(message, cose.Sign1Message) else "COSE_Mac0"
    try:
        alg: str | None = message.alg.name
    except EvidenceError:
        alg = None
    kid = message.kid
    return {"structure": kind, "alg": alg, "kid": kid.hex() if kid is not None else None}


@click.group()
def cli() -> None:
    """Make, show and verify EAT / PSA tokens."""


# ---- show -------------------------------------------------------------------------------------


@cli.command()
@click.argument("token", metavar="TOKEN")
@click.option("--media-type", help="Evidence media type (default: detected from the token).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(token: str, media_type: str | None, as_json: bool) -> None:
    """Decode TOKEN (without verifying it) and print its claims by registered name."""
    data = read_token(token)
    scheme = _scheme(data, media_type)
    note: str | None = None
    try:
        decoded = scheme.decode(data)
    except EvidenceError as e:
        if scheme is not schemes.DEVICE_EAT:
            fail(f"cannot decode the token as {scheme.name}: {e.message}")
        note = f"not a valid {scheme.name} token: {e.message}"
        try:
            decoded = schemes.GENERIC_EAT.decode(data)
        except EvidenceError as e2:
            fail(f"cannot decode the token: {e2.message}")
    out: dict[str, Any] = {
        "scheme": decoded.scheme,
        "media_type": decoded.media_type,
        "profile": decoded.profile,
        **_structure(decoded.message),
        "verified": False,
        "note": note,
        "claims": decoded.claims,
    }
    if as_json:
        emit_json(out)
        return
    click.echo(f"scheme:    {decoded.scheme} ({decoded.media_type})")
    click.echo(f"profile:   {decoded.profile}")
    click.echo(f"structure: {out['structure']} alg={out['alg']} kid={out['kid']}")
    click.echo("verified:  no (use `edgetrust evidence verify`)")
    if note:
        click.echo(f"note:      {note}")
    for name, value in decoded.claims.items():
        rendered = value if isinstance(value, str) else json.dumps(value)
        click.echo(f"  {name}: {rendered}")


# ---- verify -----------------------------------------------------------------------------------


@cli.command()
@click.argument("token", metavar="TOKEN")
@click.option(
    "--key",
    "key_file",
    required=True,
    metavar="FILE",
    help="PEM/DER public key or certificate, JWK, COSE_Key, or raw HMAC key bytes.",
)
@click.option("--nonce", callback=hexbytes, metavar="HEX", help="The nonce the token must carry.")
@click.option("--at", "at", metavar="ISO8601", help="Check times at this instant [now].")
@click.option("--media-type", help="Evidence media type (default: detected from the token).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(
    *,
    token: str,
    key_file: str,
    nonce: bytes | None,
    at: str | None,
    media_type: str | None,
    as_json: bool,
) -> None:
    """Verify TOKEN with the key in FILE. Exit 0 valid, 1 invalid, 2 unusable input."""
    data = read_token(token)
    try:
        key = load_verification_key(_read(key_file, "key"))
    except ConfigError as e:
        fail(f"{key_file}: {e.message}")
    now = _parse_time(at)
    scheme = _scheme(data, media_type)
    try:
        verified = scheme.verify(data, key, expected_nonce=nonce, now=now)
    except EvidenceError as e:
        _verdict(as_json, valid=False, error=e.message, scheme=scheme.name, profile=None)
        raise SystemExit(EXIT_INVALID) from None
    _verdict(
        as_json,
        valid=True,
        error=None,
        scheme=verified.scheme,
        profile=verified.profile,
        claims=verified.claims,
    )
    raise SystemExit(EXIT_OK)


def _verdict(
    as_json: bool,
    *,
    valid: bool,
    error: str | None,
    scheme: str,
    profile: str | None,
    claims: dict[str, Any] | None = None,
) -> None:
    if as_json:
        emit_json(
            {
                "valid": valid,
                "error": error,
                "scheme": scheme,
                "profile": profile,
                "claims": claims or {},
            }
        )
    elif valid:
        click.echo(f"valid: {scheme} token" + (f", profile {profile}" if profile else ""))
    else:
        click.echo(f"invalid: {error}")


__all__ = ["cli", "read_token"]
