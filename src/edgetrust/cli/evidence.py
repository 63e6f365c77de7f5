"""``edgetrust evidence``: make, show and verify EAT / PSA tokens; show and verify EARs.

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
* ``ear-show FILE`` / ``ear-verify FILE --key KEY_OR_CERT``: attestation results (EAR, JWT or CWT),
  e.g. the one ``device onboard`` stores; see :mod:`edgetrust.cli.evidence_ear`.

A TOKEN file holds the token's bytes, or the same bytes as hexadecimal text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest import cose, eat, schemes
from edgetrust.attest.dice import DiceMode
from edgetrust.attest.identity import DeviceIdentity, Layer
from edgetrust.attest.keys import load_verification_key
from edgetrust.certs.builders import build_device_id_certificate
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.certs.loading import read_private_key, write_certificates, write_private_key
from edgetrust.cli.evidence_ear import ear_show, ear_verify
from edgetrust.cli.evidence_input import parse_time, read_input, read_token
from edgetrust.cli.reporting import EXIT_INVALID, EXIT_OK, emit_json, fail, hexbytes
from edgetrust.errors import ConfigError, Error, EvidenceError


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
    """Make, show and verify EAT / PSA tokens; show and verify EARs."""


cli.add_command(ear_show)
cli.add_command(ear_verify)


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
        key = load_verification_key(read_input(key_file, "key"))
    except ConfigError as e:
        fail(f"{key_file}: {e.message}")
    now = parse_time(at)
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


# ---- make -------------------------------------------------------------------------------------


def _pairs(option: str, values: tuple[str, ...]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            fail(f"{option} expects NAME=VALUE, got {value!r}")
        out.append((name, rest))
    return out


def _booted_from_uds(
    *,
    uds_file: str,
    layers: tuple[str, ...],
    components: tuple[str, ...],
    svns: tuple[str, ...],
    ca_dir: str | None,
    product: str,
    firmware_version: str,
    oemid: bytes | None,
    debug: bool,
    secure_boot: bool,
    now: dt.datetime,
    out_dir: Path,
) -> tuple[Any, tuple[eat.Measurement, ...], dict[str, Any]]:
    """Boot a device from a UDS file and layer images (no device directory)."""
    if not layers:
        fail("--uds-file needs at least one --layer NAME=FILE (in boot order)")
    svn: dict[str, int] = {}
    for name, text in _pairs("--svn", svns):
        if not text.isdigit():
            fail(f"--svn {name}: not a non-negative integer: {text!r}")
        svn[name] = int(text)
    mode = DiceMode.DEBUG if debug else DiceMode.NORMAL
    identity = DeviceIdentity.from_uds(read_input(uds_file, "UDS"))
    dice_layers = [
        Layer(
            name=name,
            version=firmware_version,
            svn=svn.get(name, 0),
            code=read_input(path, f"layer {name}"),
            mode=mode,
        )
        for name, path in _pairs("--layer", layers)
    ]
    written: dict[str, Any] = {}
    if ca_dir is not None:
        ca = CertificateAuthority.load(ca_dir)
    else:
        ca = CertificateAuthority.create(subject="CN=edgetrust evidence make (ephemeral)", now=now)
        root = out_dir / "root.pem"
        write_certificates(root, [ca.anchor])
        written["root"] = str(root)
    device_id = build_device_id_certificate(
        csr=identity.device_id_csr(),
        issuer=ca,
        ueid=identity.ueid,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=3650),
    )
    intermediates = ca.chain[:-1]
    booted = identity.boot(dice_layers, device_id, intermediates=intermediates)
    measurements = [
        eat.Measurement(
            name=m.name,
            digest_alg="sha-256",
            digest=m.digests["sha256"],
            version=m.version,
            svn=m.svn,
            layer=m.index,
        )
        for m in booted.layers
    ]
    for name, path in _pairs("--component", components):
        digest = hashlib.sha256(read_input(path, f"component {name}")).digest()
        measurements.append(eat.Measurement(name=name, digest_alg="sha-256", digest=digest))
    claims = {
        "ueid": identity.ueid,
        "oemid": oemid,
        "hwmodel": product.encode("utf-8"),
        "swname": product,
        "swversion": eat.Version(version=firmware_version),
        "dbgstat": eat.DebugStatus.ENABLED if debug else eat.DebugStatus.DISABLED_PERMANENTLY,
        "oemboot": secure_boot,
    }
    return booted, tuple(measurements), {"claims": claims, "written": written}


@cli.command()
@click.option("--device", "device_dir", metavar="DIR", help="A device directory (factory output).")
@click.option("--uds-file", metavar="FILE", help="The device's UDS (32 or 64 bytes).")
@click.option(
    "--layer", "layers", multiple=True, metavar="NAME=FILE", help="A DICE layer image, boot order."
)
@click.option(
    "--component", "components", multiple=True, metavar="NAME=FILE",
    help="A measured component (application, model) that is not a DICE layer.",
)  # fmt: skip
@click.option("--svn", "svns", multiple=True, metavar="NAME=N", help="A layer's SVN [0].")
@click.option("--ca", "ca_dir", metavar="DIR", help="Manufacturer CA issuing the DeviceID cert.")
@click.option("--product", default="edgetrust-sim", show_default=True, help="Product (hwmodel).")
@click.option("--firmware-version", default="1.0.0", show_default=True, help="swversion.")
@click.option(
    "--oemid", callback=hexbytes, default="ed9e75", show_default=True, metavar="HEX",
    help="oemid: a 3-byte OUI or 16 random bytes.",
)  # fmt: skip
@click.option("--debug", is_flag=True, help="Boot in DICE debug mode; dbgstat enabled.")
@click.option("--no-secure-boot", is_flag=True, help="oemboot false.")
@click.option("--nonce", callback=hexbytes, metavar="HEX", help="The verifier's nonce [random].")
@click.option("--tls-key", metavar="FILE", help="Private key named by cnf [new P-256 key].")
@click.option("--at", "at", metavar="ISO8601", help="Issue time (iat) [now].")
@click.option("--out", "out", required=True, metavar="FILE", help="Where to write the token.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def make(
    *,
    device_dir: str | None,
    uds_file: str | None,
    layers: tuple[str, ...],
    components: tuple[str, ...],
    svns: tuple[str, ...],
    ca_dir: str | None,
    product: str,
    firmware_version: str,
    oemid: bytes | None,
    debug: bool,
    no_secure_boot: bool,
    nonce: bytes | None,
    tls_key: str | None,
    at: str | None,
    out: str,
    as_json: bool,
) -> None:
    """Boot a device and write an EAT of the device profile signed by its leaf alias key.

    Next to the token: chain.pem (leaf first), chain-leaf.pem (so that `evidence verify --key
    chain-leaf.pem` works), tls-key.pem (the key named by cnf, unless --tls-key) and, without
    --ca or --device, root.pem (the ephemeral manufacturer root the DeviceID chains to).
    """
    if (device_dir is None) == (uds_file is None):
        fail("give exactly one of --device DIR and --uds-file FILE")
    if device_dir is not None and (layers or components or svns or ca_dir):
        fail("--layer, --component, --svn and --ca go with --uds-file, not --device")
    now = parse_time(at)
    out_path = Path(out)
    out_dir = out_path.parent
    nonce = nonce if nonce is not None else secrets.token_bytes(32)
    try:
        key = _tls_key(tls_key)
        written: dict[str, Any] = {}
        if device_dir is not None:
            # Imported here: onboarding pulls in gRPC (~0.5 s) that show/verify do not need.
            from edgetrust.onboarding.device import SimulatedDevice  # noqa: PLC0415

            device = SimulatedDevice.open(device_dir)
            state = device.boot()
            token = device.evidence(state, nonce=nonce, tls_key=key, now=now)
            chain = state.chain
        else:
            booted, measurements, extra = _booted_from_uds(
                uds_file=uds_file or "",
                layers=layers,
                components=components,
                svns=svns,
                ca_dir=ca_dir,
                product=product,
                firmware_version=firmware_version,
                oemid=oemid,
                debug=debug,
                secure_boot=not no_secure_boot,
                now=now,
                out_dir=out_dir,
            )
            claims = eat.EatClaims(
                eat_profile=eat.DEVICE_PROFILE,
                nonce=nonce,
                iat=int(now.timestamp()),
                cnf_key=key.public_key(),
                measurements=measurements,
                **extra["claims"],
            )
            token = eat.make_eat(claims, booted.leaf_key)
            chain = booted.chain
            written.update(extra["written"])
        out_path.write_bytes(token)
        write_certificates(out_dir / "chain.pem", chain)
        write_certificates(out_dir / "chain-leaf.pem", chain[:1])
        if tls_key is None:
            write_private_key(out_dir / "tls-key.pem", key, overwrite=True)
            written["tls_key"] = str(out_dir / "tls-key.pem")
    except OSError as e:
        fail(f"cannot write {out}: {e.strerror or e}")
    except Error as e:
        fail(e)
    written.update(
        token=str(out_path),
        chain=str(out_dir / "chain.pem"),
        leaf=str(out_dir / "chain-leaf.pem"),
        nonce=nonce.hex(),
    )
    if as_json:
        emit_json(written)
        return
    for name, value in written.items():
        click.echo(f"{name}: {value}")


def _tls_key(path: str | None) -> ec.EllipticCurvePrivateKey:
    if path is None:
        return ec.generate_private_key(ec.SECP256R1())
    key = read_private_key(path)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        fail(f"--tls-key {path}: the operational TLS key must be an EC key")
    return key


__all__ = ["cli", "read_token"]
