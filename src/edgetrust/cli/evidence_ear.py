"""``edgetrust evidence ear-show`` / ``ear-verify``: inspect attestation results (EAR).

An EAR is what the verifier says about a device (:mod:`edgetrust.attest.ear`), e.g. the one
``edgetrust device onboard`` stores in ``DEVICE_DIR/operational/ear.bin``. Its serialization is
detected from the bytes: a JWT is ASCII text with exactly two dots (surrounding whitespace is
ignored); a CWT is a CBOR COSE_Sign1, optionally tagged 18 and/or 61 (the CWT tag). A FILE holds the
token, or a CWT's bytes as hexadecimal text. Anything else is unusable input (exit 2).

* ``ear-show FILE [--json]`` decodes the EAR WITHOUT checking its signature: every line it prints
  is UNVERIFIED. ``--json`` prints exactly ``{"serialization": "jwt"|"cwt", "media_type": str,
  "alg": str|null, "kid": str|null, "verified": false, "note": str|null, "result": {...}|null,
  "claims": {...}}``: ``result`` is the summary below, null with a ``note`` when the claims are not
  a valid EAR; ``claims`` the raw claims set (CWT: integer keys as text, byte strings as hex; kid:
  the JWT's text, a CWT's hex).
* ``ear-verify FILE --key FILE [--now ISO8601] [--json]`` verifies signature and claims (and
  ``exp`` against ``--now``, default the current time; an ``iat`` more than 60 s after it is
  refused too) with the verifier's EAR public key or
  certificate (PEM/DER, JWK, COSE_Key; e.g. ``ear-public.pem`` of ``verifier init``). ``--json``
  prints exactly ``{"valid": bool, "error": str|null, "serialization": "jwt"|"cwt",
  "media_type": str, "result": {...}|null}``. Exit 0 when signature and claims are valid, whatever
  the status tier (printed: only ``affirming`` admits a device); 1 when they are not, with the
  reason; 2 for unusable input (unreadable file, not a JWT or CWT, a key that cannot be loaded or is
  not an EC / Ed25519 public key).

The summary: ``{"profile", "status", "trust_vector" (the device submod's, null when there is no
device submod), "verifier_id": {"developer", "build"}, "issued_at", "expires_at", "nonce",
"submods": {label: {"status", "trust_vector", "policy_id", "reasons", "ueid", "product",
"firmware_version"}}}``; times in ISO 8601, byte strings in hex.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import click
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.attest import cbor, cose
from edgetrust.attest.ear import (
    EAR_CWT_MEDIA_TYPE,
    EAR_MEDIA_TYPE,
    Appraisal,
    AttestationResult,
    from_cwt_claims,
    verify_ear,
    verify_ear_cwt,
)
from edgetrust.attest.ear_cwt import CWT_TAG
from edgetrust.attest.jws import b64url_decode, strict_json
from edgetrust.attest.keys import load_verification_key
from edgetrust.cli.evidence_input import parse_time, read_input, read_token
from edgetrust.cli.reporting import EXIT_INVALID, EXIT_OK, emit_json, fail
from edgetrust.errors import AlgorithmError, ClaimError, ConfigError, EvidenceError, MalformedError

__all__ = [
    "EarKey",
    "Serialization",
    "detect",
    "detect_ear",
    "ear_show",
    "ear_verify",
    "read_ear",
    "summary",
]

Serialization = Literal["jwt", "cwt"]
EarKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

_MEDIA_TYPES: Mapping[Serialization, str] = {"jwt": EAR_MEDIA_TYPE, "cwt": EAR_CWT_MEDIA_TYPE}
# First bytes of a CWT: tag 61 (d8 3d), tag 18 (d2), or an untagged array of four (84).
_CWT_STARTS = (b"\xd8\x3d", b"\xd2", b"\x84")
_PRINTABLE = frozenset(range(0x21, 0x7F))


_NOT_AN_EAR = (
    "not an EAR: neither a JWT (ASCII text with two dots) nor a CWT "
    "(CBOR COSE_Sign1, optionally tagged 61/18)"
)


def detect_ear(token: bytes) -> tuple[Serialization, bytes]:
    """The EAR's serialization and the bytes to decode (a JWT without surrounding whitespace).

    Raises :class:`~edgetrust.errors.MalformedError` when the bytes are neither form.
    """
    text = token.strip()
    if text.count(b".") == 2 and set(text) <= _PRINTABLE:
        return "jwt", text
    if not token.startswith(_CWT_STARTS):
        raise MalformedError(_NOT_AN_EAR)
    return "cwt", token


def detect(token: bytes) -> tuple[Serialization, bytes]:
    """:func:`detect_ear` for a command: exit 2 with a one-line error when it is not an EAR."""
    try:
        return detect_ear(token)
    except MalformedError as e:
        fail(e)


def read_ear(
    token: bytes, key: EarKey | None = None, *, now: dt.datetime | None = None
) -> tuple[Serialization, AttestationResult]:
    """Detect an EAR's serialization (JWT or CWT) and decode it: verified when ``key`` is given
    (signature, claims, and with ``now`` the times), else decoded WITHOUT checking the signature.

    Raises :class:`~edgetrust.errors.EvidenceError` (MalformedError when the bytes are neither a
    JWT nor a CWT) instead of exiting: for commands that report an EAR among other things
    (``device onboard``).
    """
    serialization, data = detect_ear(token)
    if key is not None:
        return serialization, _verify(serialization, data, key, now)
    decoded = _decode(serialization, data)
    if decoded.result is None:
        raise decoded.error or ClaimError("not a valid EAR claims set")
    return serialization, decoded.result


# ---- decoding without verifying -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Decoded:
    alg: str | None
    kid: str | None
    claims: dict[str, Any]
    result: AttestationResult | None
    error: EvidenceError | None  # why the claims are not a valid EAR (result is None)

    @property
    def note(self) -> str | None:
        return None if self.error is None else f"not a valid EAR claims set: {self.error.message}"


def _decode(serialization: Serialization, token: bytes) -> _Decoded:
    """Decode the EAR without verifying it; EvidenceError when it is not even well-formed."""
    if serialization == "jwt":
        parts = token.split(b".")
        header = strict_json(b64url_decode(parts[0], what="JWS header"), "JWS header")
        claims: Any = strict_json(b64url_decode(parts[1], what="JWS payload"), "EAR claims set")
        alg, kid = header.get("alg"), header.get("kid")
        alg_name = alg if isinstance(alg, str) else None
        kid_text = kid if isinstance(kid, str) else None
        parse = AttestationResult.from_claims
    else:
        message = cose.decode_sign1(token, outer_tags=(CWT_TAG,))
        if message.payload is None:
            raise MalformedError("EAR CWT has no payload (detached)")
        claims = cbor.loads(message.payload, expect=dict)
        try:
            alg_name = message.alg.name
        except AlgorithmError:
            alg_name = None
        kid_text = message.kid.hex() if message.kid is not None else None
        parse = from_cwt_claims
    try:
        result: AttestationResult | None = parse(claims)
        error = None
    except EvidenceError as e:
        result, error = None, e
    return _Decoded(alg=alg_name, kid=kid_text, claims=_plain(claims), result=result, error=error)


def _plain(value: Any) -> Any:
    """A decoded claim as JSON: text keys, byte strings in hex, CBOR tags as {tag, value}."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, cbor.Tag):
        return {"tag": value.tag, "value": _plain(value.value)}
    if value is None or isinstance(value, str | int | float):
        return value
    return repr(value)


# ---- the summary --------------------------------------------------------------------------------


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _hex(data: bytes | None) -> str | None:
    return data.hex() if data is not None else None


def _appraisal(appraisal: Appraisal) -> dict[str, Any]:
    return {
        "status": appraisal.status.label,
        "trust_vector": appraisal.trust_vector.to_json(),
        "policy_id": appraisal.policy_id,
        "reasons": list(appraisal.reasons),
        "ueid": _hex(appraisal.ueid),
        "product": appraisal.product,
        "firmware_version": appraisal.firmware_version,
    }


def summary(result: AttestationResult) -> dict[str, Any]:
    """The EAR as the ``result`` object of ``--json`` (see the module docstring)."""
    try:
        vector: dict[str, int] | None = result.device.trust_vector.to_json()
    except ClaimError:
        vector = None
    return {
        "profile": result.profile,
        "status": result.status.label,
        "trust_vector": vector,
        "verifier_id": result.verifier_id.to_json(),
        "issued_at": _iso(result.issued_at),
        "expires_at": _iso(result.expires_at),
        "nonce": _hex(result.nonce),
        "submods": {label: _appraisal(a) for label, a in result.submods.items()},
    }


def _vector_text(vector: Mapping[str, int] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in vector.items()) if vector else "-"


def _echo_summary(report: Mapping[str, Any]) -> None:
    status = report["status"]
    verdict = "" if status == "affirming" else " (not affirming: not an admission)"
    verifier = report["verifier_id"]
    click.echo(f"profile:       {report['profile']}")
    click.echo(f"status:        {status}{verdict}")
    click.echo(f"trust vector:  {_vector_text(report['trust_vector'])}")
    click.echo(f"verifier-id:   {verifier['developer']} (build {verifier['build']})")
    click.echo(f"iat:           {report['issued_at']}")
    click.echo(f"exp:           {report['expires_at'] or 'none'}")
    if report["nonce"]:
        click.echo(f"nonce:         {report['nonce']}")
    click.echo("submods:")
    for label, appraisal in report["submods"].items():
        click.echo(f"  {label}: {appraisal['status']} [{_vector_text(appraisal['trust_vector'])}]")
        facts = [f"{name}={appraisal[name]}" for name in ("product", "firmware_version", "ueid")]
        click.echo(f"    {' '.join(f for f in facts if not f.endswith('=None'))}".rstrip())
        if appraisal["reasons"]:
            click.echo(f"    reasons: {'; '.join(appraisal['reasons'])}")


# ---- commands -----------------------------------------------------------------------------------


@click.command("ear-show")
@click.argument("ear_file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def ear_show(ear_file: str, as_json: bool) -> None:
    """Decode the EAR in FILE WITHOUT verifying it (JWT or CWT, detected)."""
    serialization, token = detect(read_token(ear_file))
    try:
        decoded = _decode(serialization, token)
    except EvidenceError as e:
        fail(f"cannot decode the EAR as a {serialization.upper()}: {e.message}")
    result = summary(decoded.result) if decoded.result is not None else None
    if as_json:
        emit_json(
            {
                "serialization": serialization,
                "media_type": _MEDIA_TYPES[serialization],
                "alg": decoded.alg,
                "kid": decoded.kid,
                "verified": False,
                "note": decoded.note,
                "result": result,
                "claims": decoded.claims,
            }
        )
        return
    click.echo("UNVERIFIED: signature not checked (use `edgetrust evidence ear-verify`)")
    click.echo(f"serialization: {serialization} alg={decoded.alg} kid={decoded.kid}")
    if decoded.note:
        click.echo(f"note:          {decoded.note}")
    if result is not None:
        _echo_summary(result)
        return
    for name, value in decoded.claims.items():
        click.echo(f"  {name}: {value if isinstance(value, str) else json.dumps(value)}")


def _load_key(key_file: str) -> EarKey:
    try:
        key = load_verification_key(read_input(key_file, "key"))
    except ConfigError as e:
        fail(f"{key_file}: {e.message}")
    if not isinstance(key, EarKey):
        fail(f"{key_file}: an EAR is verified with an EC (P-256, P-384) or Ed25519 public key")
    return key


def _verify(
    serialization: Serialization, token: bytes, key: EarKey, now: dt.datetime | None
) -> AttestationResult:
    if serialization == "cwt":
        return verify_ear_cwt(token, key, now=now)
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise AlgorithmError("a JWT EAR is signed with ES256 or ES384: the key must be EC")
    return verify_ear(token, key, now=now)


@click.command("ear-verify")
@click.argument("ear_file", metavar="FILE")
@click.option(
    "--key",
    "key_file",
    required=True,
    metavar="KEY_OR_CERT",
    help="The verifier's EAR public key or certificate (PEM/DER, JWK, COSE_Key).",
)
@click.option(
    "--now", "--at", "at", metavar="ISO8601", help="Check exp and iat at this instant [now]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def ear_verify(*, ear_file: str, key_file: str, at: str | None, as_json: bool) -> None:
    """Verify the EAR in FILE. Exit 0 valid (any status), 1 invalid, 2 unusable input."""
    serialization, token = detect(read_token(ear_file))
    key = _load_key(key_file)
    now = parse_time(at, "--now")
    media_type = _MEDIA_TYPES[serialization]
    try:
        result = _verify(serialization, token, key, now)
    except EvidenceError as e:
        if as_json:
            emit_json(
                {
                    "valid": False,
                    "error": e.message,
                    "serialization": serialization,
                    "media_type": media_type,
                    "result": None,
                }
            )
        else:
            click.echo(f"invalid: {e.message}")
        raise SystemExit(EXIT_INVALID) from None
    report = summary(result)
    if as_json:
        emit_json(
            {
                "valid": True,
                "error": None,
                "serialization": serialization,
                "media_type": media_type,
                "result": report,
            }
        )
    else:
        click.echo(f"valid: {serialization.upper()} EAR, signature and claims verified")
        _echo_summary(report)
    raise SystemExit(EXIT_OK)
