"""``edgetrust device``: a simulated device (see :mod:`edgetrust.onboarding.device`).

* ``edgetrust device onboard DEVICE_DIR --verifier HOST:PORT --ca FILE [--json]`` -- boot, ask for
  a nonce, attest, and on success write ``DEVICE_DIR/operational/`` (key, certificate, EAR).
  Exit 0 with the EAR summary; exit 1 with the verifier's reasons when refused; 2 for unusable
  input; 3 when the verifier cannot be reached.
* ``edgetrust device show DEVICE_DIR [--json]`` -- the manifest, the boot measurements and the
  operational certificate, if any.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from edgetrust.certs.loading import certificates_pem, load_public_key, read_certificates
from edgetrust.cli.evidence_ear import EarKey, Serialization, detect_ear, read_ear
from edgetrust.cli.reporting import EXIT_INVALID, emit_json, fail
from edgetrust.errors import Error, EvidenceError, KeyFileError
from edgetrust.onboarding.device import OnboardingResult, SimulatedDevice, VerifierClient


@click.group()
def cli() -> None:
    """A simulated device: boot, attest, onboard."""


def _ear_key(ear_key: Path, serialization: Serialization) -> EarKey:
    try:
        key = load_public_key(ear_key.read_bytes())
    except (OSError, EvidenceError) as e:
        raise KeyFileError(f"{ear_key}: not a readable public key: {e}") from e
    if isinstance(key, ec.EllipticCurvePublicKey) or (
        serialization == "cwt" and isinstance(key, ed25519.Ed25519PublicKey)
    ):
        return key
    raise KeyFileError(f"{ear_key}: the EAR key must be an EC public key")


def _ear_summary(ear: bytes, ear_key: Path | None) -> dict[str, Any]:
    """The EAR's claims, JWT or CWT (verified when the verifier's EAR public key is given)."""
    if not ear:
        return {}
    try:
        serialization, _ = detect_ear(ear)
        key = _ear_key(ear_key, serialization) if ear_key is not None else None
        _, result = read_ear(ear, key)
    except EvidenceError as e:
        return {"ear": f"undecodable: {e}"}
    device = result.device
    return {
        "status": result.status.label,
        "verified": ear_key is not None,
        "trust_vector": device.trust_vector.to_json(),
        "reasons": list(device.reasons),
        "product": device.product,
        "firmware_version": device.firmware_version,
        "issued_at": result.issued_at.isoformat(),
        "verifier": result.verifier_id.to_json(),
    }


def _report(
    device: SimulatedDevice, result: OnboardingResult, ear_key: Path | None
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "device": str(device.directory),
        "ueid": device.ueid.hex(),
        "onboarded": result.affirmed,
        "tier": result.tier,
        "reasons": list(result.reasons),
        "ear": _ear_summary(result.ear, ear_key),
    }
    if result.certificate is not None:
        report |= {
            "spiffe_id": result.spiffe_id,
            "serial": format(result.certificate.serial_number, "x"),
            "not_after": result.certificate.not_valid_after_utc.isoformat(),
            "certificate": str(device.operational_dir / "cert.pem"),
            "key": str(device.operational_dir / "key.pem"),
        }
    return report


@cli.command()
@click.argument("device_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--verifier", "target", required=True, metavar="HOST:PORT")
@click.option(
    "--ca",
    "ca_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The cluster CA certificate (PEM) that signed the verifier's TLS certificate.",
)
@click.option("--server-name", help="TLS name to expect instead of HOST.")
@click.option(
    "--ear-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The verifier's EAR public key: verify the EAR before printing it.",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds per call.")
@click.option("--json", "as_json", is_flag=True)
def onboard(  # noqa: PLR0917 - click passes options positionally
    device_dir: Path,
    target: str,
    ca_file: Path,
    server_name: str | None,
    ear_key: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Attest to the verifier and, when affirmed, store the operational certificate."""
    device = SimulatedDevice.open(device_dir)
    ca_pem = certificates_pem(read_certificates(ca_file))
    with VerifierClient(
        target, root_ca_pem=ca_pem, timeout=timeout, server_name=server_name
    ) as client:
        try:
            result = device.onboard(client)
        except EvidenceError as e:
            # The verifier called our request malformed: a negative verdict on our input.
            fail(e, EXIT_INVALID)
    report = _report(device, result, ear_key)
    if as_json:
        emit_json(report)
    elif result.affirmed:
        click.echo(f"onboarded {report['spiffe_id']}")
        click.echo(f"  certificate {report['certificate']} (until {report['not_after']})")
        ear = report["ear"]
        if ear.get("status"):
            vector = ", ".join(f"{k}={v}" for k, v in ear["trust_vector"].items())
            click.echo(f"  EAR {ear['status']} [{vector}]")
    else:
        click.echo(f"refused: {'; '.join(result.reasons)}", err=True)
    if not result.affirmed:
        raise SystemExit(EXIT_INVALID)


@cli.command()
@click.argument("device_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def show(device_dir: Path, as_json: bool) -> None:
    """The device's manifest, what it measures at boot, and its operational certificate."""
    device = SimulatedDevice.open(device_dir)
    try:
        boot = device.boot()
    except Error as e:
        fail(e)
    cert = device.operational_certificate()
    now = datetime.now(UTC)
    report: dict[str, Any] = {
        "device": str(device.directory),
        "ueid": device.ueid.hex(),
        "product": device.manifest.product,
        "firmware_version": device.manifest.firmware_version,
        "mode": device.manifest.mode,
        "measurements": [
            {"name": m.name, "sha256": m.digest.hex(), "version": m.version, "svn": m.svn}
            for m in boot.measurements
        ],
        "chain": [c.subject.rfc4514_string() for c in boot.chain],
        "operational_certificate": None
        if cert is None
        else {
            "serial": format(cert.serial_number, "x"),
            "not_after": cert.not_valid_after_utc.isoformat(),
            "needs_renewal": device.needs_renewal(now),
        },
    }
    if as_json:
        emit_json(report)
        return
    click.echo(f"device {report['ueid']} ({report['product']} {report['firmware_version']})")
    for m in report["measurements"]:
        click.echo(f"  {m['name']:<14} sha256:{m['sha256']}")
    op = report["operational_certificate"]
    click.echo(f"  operational certificate: {op['not_after'] if op else 'none'}")
