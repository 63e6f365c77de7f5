"""``edgetrust registry``: inspect the device registry, revoke, read the audit log and the feed.

Commands (each takes ``--db URL`` or ``--config FILE`` and ``--json``):

* ``list [--status active|revoked] [--product NAME]`` -- the onboarded devices.
* ``show UEID`` -- one device (UEID in hex) with its certificates.
* ``revoke UEID [--reason TEXT]`` -- revoke a device and all its certificates; the change goes to
  the revocation feed that agents follow and to the audit log. Revoking again changes nothing.
* ``revoke-cert SERIAL [--reason TEXT]`` -- revoke one operational certificate (serial in hex).
* ``audit [--since N] [--limit N] [--verify] [--expect-head SEQ:HASH] [--head]`` -- audit entries
  after ``seq`` N; ``--verify`` checks the whole hash chain first; ``--expect-head`` also checks
  that it still holds a head recorded earlier (exit 1 if not: truncated or rewritten, see
  :mod:`edgetrust.onboarding.ledger`); ``--head`` prints only the verified head, ``SEQ:HASH``.
* ``revocations [--since N]`` -- the revocation feed after ``seq`` N.

Which database: ``--db URL`` (a path means SQLite), else the ``[registry] url`` of ``--config
FILE``, else ``$EDGETRUST_DB_URL``, else ``$EDGETRUST_VERIFIER_CONFIG``, else ``./verifier.toml``
if present, else ``./registry.db`` (see :func:`edgetrust.onboarding.config.registry_url`). The
registry must exist: these commands never create one.

Exit codes: 0 done; 1 no such device / certificate, or the audit log no longer holds the
recorded head; 2 bad input, URL or configuration (also: no registry there); 3 the database failed
or is unreachable (also: an audit hash chain that is broken inside).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from edgetrust.cli.reporting import EXIT_INVALID, fail
from edgetrust.cli.store_access import Output, store_command
from edgetrust.errors import AuditAnchorError, ConfigError
from edgetrust.onboarding.ledger import AuditHead, chain_head
from edgetrust.onboarding.records import (
    AuditRecord,
    CertificateRecord,
    DeviceRecord,
    DeviceStatus,
    RevocationEvent,
)
from edgetrust.onboarding.store import SqlRegistryStore


def _hex(what: str) -> Callable[[click.Context, click.Parameter, str], bytes]:
    def parse(_ctx: click.Context, _param: click.Parameter, value: str) -> bytes:
        text = value.strip().lower().removeprefix("0x")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise click.BadParameter(f"{what} must be hexadecimal, not {value!r}") from None
        if not data:
            raise click.BadParameter(f"{what} must not be empty")
        return data

    return parse


def _serial(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    text = value.strip().lower().removeprefix("0x")
    try:
        serial = int(text, 16)
    except ValueError:
        raise click.BadParameter(f"SERIAL must be hexadecimal, not {value!r}") from None
    if not 0 < serial < 2**160:
        raise click.BadParameter("SERIAL must be a positive number of at most 160 bits")
    return serial


def _actor(given: str | None) -> str:
    if given:
        return given
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in this container
        return "cli"


def _now() -> datetime:
    return datetime.now(UTC)


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds")


def _device_json(device: DeviceRecord) -> dict[str, Any]:
    return {
        "ueid": device.ueid_hex,
        "product": device.product,
        "status": device.status.value,
        "created_at": device.created_at,
        "updated_at": device.updated_at,
        "revoked_at": device.revoked_at,
        "device_id_fingerprint": device.device_id_fingerprint,
    }


def _certificate_json(cert: CertificateRecord) -> dict[str, Any]:
    return {
        "serial": cert.serial_hex,
        "spiffe_id": cert.spiffe_id,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "issued_at": cert.issued_at,
        "revoked_at": cert.revoked_at,
    }


def _revocation_json(event: RevocationEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "kind": event.kind.value,
        "ueid": event.ueid_hex,
        "serial": event.serial_hex,
        "reason": event.reason,
        "actor": event.actor,
        "revoked_at": event.revoked_at,
    }


def _audit_json(entry: AuditRecord) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "subject": entry.subject,
        "detail": entry.detail,
        "digest": entry.digest,
    }


@click.group()
def cli() -> None:
    """Inspect the device registry, revoke, audit."""


@cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in DeviceStatus]), default=None)
@click.option("--product", default=None, help="Only devices of this product.")
@store_command
def list_devices(store: SqlRegistryStore, *, status: str | None, product: str | None) -> Output:
    """List the onboarded devices, oldest first."""
    devices = store.list_devices(status=DeviceStatus(status) if status else None, product=product)
    lines = [
        f"{d.ueid_hex}  {d.status.value:<7}  {d.product}  since {_when(d.created_at)}"
        for d in devices
    ]
    return Output(data=[_device_json(d) for d in devices], lines=lines or ["no devices"])


@cli.command()
@click.argument("ueid", callback=_hex("UEID"))
@store_command
def show(store: SqlRegistryStore, *, ueid: bytes) -> Output:
    """Show one device (UEID in hex) and its certificates."""
    device = store.get_device(ueid)  # NotFoundError -> exit 1
    certificates = store.certificates_of(ueid)
    data = _device_json(device)
    data["device_id_pem"] = device.device_id_pem
    data["certificates"] = [_certificate_json(c) for c in certificates]
    lines = [
        f"device      {device.ueid_hex}",
        f"product     {device.product}",
        f"status      {device.status.value}",
        f"registered  {_when(device.created_at)}",
        f"updated     {_when(device.updated_at)}",
    ]
    if device.revoked_at is not None:
        lines.append(f"revoked     {_when(device.revoked_at)}")
    lines.append(f"DeviceID    sha256:{device.device_id_fingerprint.hex()}")
    lines.append(f"certificates ({len(certificates)})")
    for c in certificates:
        state = f"revoked {_when(c.revoked_at)}" if c.revoked_at else "valid"
        validity = f"{_when(c.not_before)} .. {_when(c.not_after)}"
        lines.append(f"  {c.serial_hex}  {validity}  {state}  {c.spiffe_id}")
    return Output(data=data, lines=lines)


def _revocation_output(event: RevocationEvent, what: str) -> Output:
    line = f"revoked {what} (feed seq {event.seq}, at {_when(event.revoked_at)})"
    return Output(data=_revocation_json(event), lines=[line])


@cli.command()
@click.argument("ueid", callback=_hex("UEID"))
@click.option("--reason", default="", help="Why (kept in the feed and the audit log).")
@click.option("--actor", default=None, help="Who revokes. [default: cli:<login name>]")
@store_command
def revoke(store: SqlRegistryStore, *, ueid: bytes, reason: str, actor: str | None) -> Output:
    """Revoke a device (UEID in hex) and every certificate it holds."""
    event = store.revoke_device(ueid, reason=reason, actor=_actor(actor), now=_now())
    return _revocation_output(event, f"device {ueid.hex()}")


@cli.command("revoke-cert")
@click.argument("serial", callback=_serial)
@click.option("--reason", default="", help="Why (kept in the feed and the audit log).")
@click.option("--actor", default=None, help="Who revokes. [default: cli:<login name>]")
@store_command
def revoke_cert(store: SqlRegistryStore, *, serial: int, reason: str, actor: str | None) -> Output:
    """Revoke one operational certificate (serial number in hex)."""
    event = store.revoke_certificate(serial, reason=reason, actor=_actor(actor), now=_now())
    return _revocation_output(event, f"certificate {format(serial, 'x')}")


def _audit_head(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> AuditHead | None:
    if value is None:
        return None
    try:
        return AuditHead.parse(value)
    except ConfigError as e:
        raise click.BadParameter(e.message) from None


@cli.command()
@click.option(
    "--since", type=click.IntRange(min=0), default=0, show_default=True, help="After seq N."
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N entries.")
@click.option("--verify", is_flag=True, help="Check the whole hash chain first (exit 3 if broken).")
@click.option(
    "--expect-head",
    metavar="SEQ:HASH",
    callback=_audit_head,
    default=None,
    help="A head recorded earlier (--head): check that the chain still holds it (exit 1 if the "
    "log was truncated or rewritten since). Implies --verify.",
)
@click.option(
    "--head",
    "print_head",
    is_flag=True,
    help="Print only the head of the verified chain, SEQ:HASH, to record outside the registry.",
)
@store_command
def audit(
    store: SqlRegistryStore,
    *,
    since: int,
    limit: int | None,
    verify: bool,
    expect_head: AuditHead | None,
    print_head: bool,
) -> Output:
    """Print the append-only audit log (or, with --head, the head of its hash chain)."""
    chain = None
    if verify or expect_head is not None or print_head:
        try:
            chain = store.verify_audit_chain(expect_head=expect_head)  # StoreError -> exit 3
        except AuditAnchorError as e:
            fail(e, EXIT_INVALID)
    if print_head and chain is not None:
        head = chain_head(chain)
        data = {"seq": head.seq, "digest": head.digest, "head": head.text()}
        return Output(data=data, lines=[head.text()])
    entries = store.audit_since(since, limit=limit)
    listed = [_audit_json(e) for e in entries]
    lines = [
        f"{e.seq:>6}  {_when(e.at)}  {e.actor}  {e.action}  {e.subject}  {e.detail_json}"
        for e in entries
    ]
    if chain is None:
        return Output(data=listed, lines=lines)
    verified: dict[str, Any] = {"verified": True, "length": chain.length, "head": chain.head}
    summary = [f"audit chain verified: {chain.length} entries, head {chain.head.hex()}"]
    if expect_head is not None:
        verified["expected_head"] = expect_head.text()
        summary.append(f"recorded head {expect_head.text()} is still in the chain")
    return Output(data={"entries": listed, "chain": verified}, lines=[*summary, *lines])


@cli.command()
@click.option(
    "--since", type=click.IntRange(min=0), default=0, show_default=True, help="After seq N."
)
@store_command
def revocations(store: SqlRegistryStore, *, since: int) -> Output:
    """Print the revocation feed (what agents follow)."""
    events: list[RevocationEvent] = []
    while True:
        page = store.revocations_since(events[-1].seq if events else since, limit=1000)
        events += page
        if len(page) < 1000:
            break
    lines = []
    for e in events:
        subject = f"device {e.ueid_hex}" if e.serial is None else f"certificate {e.serial_hex}"
        lines.append(f"{e.seq:>6}  {_when(e.revoked_at)}  {subject}  {e.actor}  {e.reason}")
    return Output(data=[_revocation_json(e) for e in events], lines=lines)
