"""``edgetrust certs``: show and verify X.509 / DICE certificates.

* ``show FILE [--json]``: every field a person needs, DICE extensions decoded.
* ``verify --anchor FILE CERT... [--at ISO8601] [--json]``: certificates in any order, PEM or
  DER, one or many per file; an anchor file holds certificates and/or public keys. Exit 0 when
  the chain is valid, 1 when it is not, 2 when the input cannot be used. JSON::

    {"valid": bool, "error": str|null,
     "chain": [{"subject": str, "issuer": str, "tcb_info": [...], "ueid": hex|null,
                "open_dice": {...}|null}]}

  ``chain`` lists the validated certificates leaf first, and is empty when the chain is not
  valid; ``error`` is ``"<ErrorType>: <reason>"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from edgetrust.certs.chain import TrustAnchor, ValidatedChain, validate_chain
from edgetrust.certs.describe import describe_anchor, describe_certificate
from edgetrust.certs.loading import read_certificates, read_trust_anchors
from edgetrust.cli.reporting import EXIT_INVALID, emit_json, fail
from edgetrust.errors import ConfigError, Error, EvidenceError

_FILE = click.Path(exists=False, dir_okay=False, path_type=Path)


@click.group()
def cli() -> None:
    """Show and verify X.509 / DICE certificates."""


@cli.command("show")
@click.argument("file", type=_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per cert.")
def show(file: Path, as_json: bool) -> None:
    """Print every certificate in FILE (PEM or DER, one or many)."""
    try:
        views = [describe_certificate(c) for c in read_certificates(file)]
    except Error as e:
        fail(e)
    if as_json:
        emit_json(views)
        return
    for index, view in enumerate(views):
        if index:
            click.echo("")
        if len(views) > 1:
            click.echo(f"# certificate {index + 1} of {len(views)}")
        _print_view(view)


@cli.command("verify")
@click.option(
    "--anchor",
    "anchor_files",
    type=_FILE,
    multiple=True,
    required=True,
    help="Trust anchor file: certificate(s) and/or public key(s), PEM or DER. Repeatable.",
)
@click.option("--at", "at", metavar="ISO8601", help="Validation time [now]; no zone means UTC.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON verdict.")
@click.argument("cert_files", metavar="CERT...", nargs=-1, required=True, type=_FILE)
def verify(
    anchor_files: Sequence[Path], at: str | None, as_json: bool, cert_files: Sequence[Path]
) -> None:
    """Validate the chain in CERT... (any order) against the anchors."""
    try:
        now = _parse_time(at)
        anchors: list[TrustAnchor] = [a for f in anchor_files for a in read_trust_anchors(f)]
        certificates = [c for f in cert_files for c in read_certificates(f)]
    except Error as e:
        fail(e)
    try:
        result = validate_chain(certificates, anchors, now)
    except EvidenceError as e:
        _report_invalid(e, as_json)
    except Error as e:  # configuration (ConfigError) or our own failure: not a verdict
        fail(e)
    if as_json:
        emit_json({"valid": True, "error": None, "chain": [e.to_dict() for e in result]})
        return
    _print_valid(result)


# --------------------------------------------------------------------------------------------


def _parse_time(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError as e:
        raise ConfigError(f"--at is not an ISO 8601 time: {text!r}") from e
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _report_invalid(error: EvidenceError, as_json: bool) -> None:
    reason = f"{type(error).__name__}: {error.message}"
    if as_json:
        emit_json({"valid": False, "error": reason, "chain": []})
    else:
        click.echo(f"invalid: {reason}")
    raise SystemExit(EXIT_INVALID)


def _print_valid(result: ValidatedChain) -> None:
    count = len(result)
    click.echo(
        f"valid: {count} certificate{'s' if count != 1 else ''} chain to "
        f"{describe_anchor(result.anchor)} (checked by {result.validator})"
    )
    for depth, entry in enumerate(result):
        click.echo(f"  [{depth}] {entry.subject}")
        click.echo(f"      issuer: {entry.issuer}")
        if entry.ueid is not None:
            click.echo(f"      ueid: {entry.ueid.hex()}")
        for tcb in entry.tcb_info:
            click.echo(f"      tcb_info: {_tcb_line(tcb.to_dict())}")
        if entry.open_dice is not None:
            view = entry.open_dice.to_dict()
            click.echo(
                f"      open_dice: mode {view['mode']}, code_hash {_short(view['code_hash'])}"
            )


def _print_view(view: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("subject", view["subject"]),
        ("issuer", view["issuer"] + ("  (self-signed)" if view["self_signed"] else "")),
        ("serial", view["serial"]),
        ("validity", f"{view['not_before']} .. {view['not_after']}"),
        ("signature", view["signature_algorithm"]),
        ("public key", f"{view['public_key']['type']} {view['public_key']['value'] or ''}"),
        ("key sha256", view["public_key"]["sha256"]),
        ("cert sha256", view["sha256"]),
    ]
    basic = view["basic_constraints"]
    if basic is not None:
        text = f"CA:{'TRUE' if basic['ca'] else 'FALSE'}"
        if basic["path_length"] is not None:
            text += f", pathLen:{basic['path_length']}"
        rows.append(("basicConstraints", text + _critical(basic)))
    usage = view["key_usage"]
    if usage is not None:
        rows.append(("keyUsage", ", ".join(usage["usages"]) + _critical(usage)))
    if view["extended_key_usage"] is not None:
        rows.append(("extKeyUsage", ", ".join(view["extended_key_usage"])))
    if view["subject_alt_names"] is not None:
        rows.append(("subjectAltName", ", ".join(view["subject_alt_names"])))
    for label, key in (("subjectKeyId", "subject_key_id"), ("authorityKeyId", "authority_key_id")):
        if view[key] is not None:
            rows.append((label, view[key]))
    rows += _dice_rows(view)
    for other in view["other_extensions"]:
        rows.append(("extension", f"{other['name']}" + _critical(other)))
    if view["extension_error"]:
        rows.append(("extensions", f"cannot parse: {view['extension_error']}"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"{label:<{width}}  {value}")


def _dice_rows(view: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for label, key in (
        ("tcg-dice-TcbInfo", "tcb_info"),
        ("tcg-dice-MultiTcbInfo", "multi_tcb_info"),
        ("tcg-dice-Ueid", "ueid"),
        ("Open DICE input", "open_dice"),
    ):
        item = view[key]
        if item is None:
            continue
        if "error" in item:
            rows.append((label, f"MALFORMED: {item['error']}" + _critical(item)))
            continue
        value = item["value"]
        if key == "tcb_info":
            rows.append((label, _tcb_line(value) + _critical(item)))
        elif key == "multi_tcb_info":
            rows += [(label, _tcb_line(v) + _critical(item)) for v in value]
        elif key == "ueid":
            rows.append((label, value + _critical(item)))
        else:
            parts = [f"{k}={_short(v)}" for k, v in value.items() if v is not None]
            rows.append((label, ", ".join(parts) + _critical(item)))
    return rows


def _tcb_line(tcb: dict[str, Any]) -> str:
    parts = [
        f"{key}={tcb[key]}"
        for key in ("vendor", "model", "version", "svn", "layer", "index")
        if tcb[key] is not None
    ]
    parts += [f"fwid={f['hash_alg']}:{f['digest']}" for f in tcb["fwids"] or []]
    if tcb["flags"] is not None:
        parts.append(f"flags=[{', '.join(tcb['flags'])}]")
    parts += [f"{key}={tcb[key]}" for key in ("vendor_info", "type") if tcb[key] is not None]
    if tcb["flags_mask"] is not None:
        parts.append(f"flags_mask=[{', '.join(tcb['flags_mask'])}]")
    if tcb["integrity_registers"]:
        parts.append(f"integrity_registers={len(tcb['integrity_registers'])}")
    return " ".join(parts) or "(empty)"


def _critical(item: dict[str, Any]) -> str:
    return "  [critical]" if item.get("critical") else ""


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else f"{text[:16]}..({len(text) // 2} bytes)"
