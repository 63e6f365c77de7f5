"""``edgetrust ca``: create a certificate authority (manufacturer root, optional intermediate).

``edgetrust ca init DIR`` writes ``root-cert.pem`` (the trust anchor verifiers need),
``root-key.pem`` (0600; move it offline once an intermediate exists) and, with
``--intermediate``, ``intermediate-cert.pem`` / ``intermediate-key.pem``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from cryptography import x509

from edgetrust.certs.ca import DEFAULT_ROOT_SUBJECT, CertificateAuthority
from edgetrust.certs.describe import describe_certificate
from edgetrust.cli.reporting import emit_json, fail
from edgetrust.errors import Error


@click.group()
def cli() -> None:
    """Manufacturer certificate authority."""


@cli.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--intermediate", is_flag=True, help="Also create an intermediate CA (issues).")
@click.option(
    "--key-alg",
    type=click.Choice(["p256", "p384"]),
    default="p256",
    show_default=True,
    help="Key type of the CA keys.",
)
@click.option(
    "--subject",
    default=DEFAULT_ROOT_SUBJECT,
    show_default=True,
    help="Root subject, RFC 4514 (most specific first: CN=...,O=...).",
)
@click.option("--intermediate-subject", help="Intermediate subject [root's, CN=intermediate CA].")
@click.option(
    "--path-length",
    type=click.IntRange(min=0),
    help="pathLen of the issuing CA [unconstrained: DICE chains are as deep as the device].",
)
@click.option("--force", is_flag=True, help="Overwrite a CA already in DIRECTORY.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def init(  # noqa: PLR0917 - click passes options as arguments
    directory: Path,
    intermediate: bool,
    key_alg: str,
    subject: str,
    intermediate_subject: str | None,
    path_length: int | None,
    force: bool,
    as_json: bool,
) -> None:
    """Create a root CA (and an intermediate) in DIRECTORY, keys 0600."""
    try:
        ca = CertificateAuthority.create(
            subject=subject,
            key_algorithm=key_alg,
            intermediate=intermediate,
            intermediate_subject=intermediate_subject,
            root_path_length=None if intermediate else path_length,
            intermediate_path_length=path_length if intermediate else None,
        )
        written = ca.save(directory, overwrite=force)
    except Error as e:
        fail(e)
    summary: dict[str, Any] = {
        "directory": str(directory),
        "root": _summary(ca.root_certificate),
        "intermediate": None if ca.intermediate is None else _summary(ca.intermediate.certificate),
        "files": [str(p) for p in written],
    }
    if as_json:
        emit_json(summary)
        return
    click.echo(f"CA written to {directory}")
    for label in ("root", "intermediate"):
        part = summary[label]
        if part is None:
            continue
        click.echo(f"  {label}: {part['subject']}")
        click.echo(f"    key {part['key']}, valid until {part['not_after']}")
        click.echo(f"    sha256 {part['sha256']}")
    for path in written:
        click.echo(f"  wrote {path}")
    click.echo("Give root-cert.pem to verifiers as the trust anchor; keep the keys private.")


def _summary(certificate: x509.Certificate) -> dict[str, str]:
    view = describe_certificate(certificate)
    return {
        "subject": view["subject"],
        "key": view["public_key"]["type"],
        "not_after": view["not_after"],
        "sha256": view["sha256"],
    }
