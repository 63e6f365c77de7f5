"""The verifier's directory (``edgetrust verifier init DIR``): keys, certificates, config, registry.

Layout::

    DIR/                     0700
      verifier.toml          the configuration (see :mod:`edgetrust.onboarding.config`)
      cluster-ca/            the cluster CA that issues operational certificates
        root-cert.pem        (certs.ca layout; hand root-cert.pem to devices and agents)
        root-key.pem         0600
      ear-key.pem            the verifier's EAR signing key (P-256, PKCS#8, 0600)
      ear-public.pem         its public key, for relying parties that check EARs
      server/
        key.pem              the verifier's TLS server key (0600)
        cert.pem             its certificate (from the cluster CA), then the CA certificates
      registry.db            the default registry (SQLite); a PostgreSQL URL may replace it

``verifier.toml`` (every key optional; relative paths are relative to the file; read and checked
by :mod:`edgetrust.onboarding.config`, which also documents the ``EDGETRUST_*`` overrides)::

    [verifier]
    listen = "127.0.0.1:7443"          # the device port (server-authenticated TLS)
    feed_listen = "127.0.0.1:7445"     # the revocation feed port (mTLS, cluster CA); "" = off
    trust_domain = "edgetrust.local"   # SPIFFE trust domain of operational certificates
    certificate_lifetime_s = 3600      # operational certificates (<= 1 day)
    nonce_ttl_s = 60
    endorsement_refresh_s = 5          # how stale the cached endorsements may get
    workers = 8                        # gRPC handler threads (per process)
    processes = 1                      # verifier processes sharing the ports (SO_REUSEPORT)
    ear_format = "jwt"                 # the signed EAR: "jwt" or "cwt"

    [keys]
    cluster_ca = "cluster-ca"
    ear_key = "ear-key.pem"
    server_cert = "server/cert.pem"
    server_key = "server/key.pem"

    [registry]
    url = "registry.db"                # a path (SQLite) or a URL: sqlite:///..., postgresql://...

The server certificate names ``localhost`` and ``127.0.0.1`` plus any host names or addresses given
to :func:`init_workspace`: a device connecting by another name fails TLS hostname checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.certs.builders import build_server_certificate
from edgetrust.certs.ca import ROOT_CERT_FILE, CertificateAuthority
from edgetrust.certs.keys import KeyAlgorithm, generate_private_key
from edgetrust.certs.loading import (
    certificates_pem,
    private_key_pem,
    read_certificates,
    read_private_key,
    write_certificates,
    write_private_key,
)
from edgetrust.errors import KeyFileError, WorkspaceError
from edgetrust.onboarding.attestation import EarFormat
from edgetrust.onboarding.config import (
    DEFAULT_EAR_FORMAT,
    DEFAULT_FEED_LISTEN,
    DEFAULT_LISTEN,
    DEFAULT_TRUST_DOMAIN,
    VerifierConfig,
    load_config,
)
from edgetrust.service.configuration import METRICS_EXAMPLE

__all__ = [
    "CLUSTER_CA_SUBJECT",
    "VerifierKeys",
    "VerifierWorkspace",
    "init_workspace",
    "load_keys",
    "write_config",
]

CONFIG_FILE: Final = "verifier.toml"
CLUSTER_CA_DIR: Final = "cluster-ca"
EAR_KEY_FILE: Final = "ear-key.pem"
EAR_PUBLIC_FILE: Final = "ear-public.pem"
SERVER_DIR: Final = "server"
SERVER_KEY_FILE: Final = "key.pem"
SERVER_CERT_FILE: Final = "cert.pem"
REGISTRY_FILE: Final = "registry.db"

CLUSTER_CA_SUBJECT: Final = "CN=edgetrust cluster CA,O=edgetrust"
SERVER_CERT_LIFETIME: Final = timedelta(days=365)
DEFAULT_SERVER_NAMES: Final = ("localhost",)
DEFAULT_SERVER_ADDRESSES: Final = ("127.0.0.1",)
#: The line ``write_config`` puts above ``processes`` (see onboarding.verifier_processes).
PROCESSES_COMMENT: Final = (
    "# more than 1 when one core is not enough (one process = one GIL); SQLite writers queue"
    " on one file lock; SO_REUSEPORT spreads connections, not calls"
)
#: The line ``write_config`` puts above ``ear_format``.
EAR_FORMAT_COMMENT: Final = (
    '# the signed EAR in AttestResponse.ear: "jwt" (compact JWS) or "cwt" (COSE_Sign1)'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierKeys:
    """Everything secret or certified the verifier needs to run."""

    cluster_ca: CertificateAuthority
    ear_key: ec.EllipticCurvePrivateKey
    server_key_pem: bytes
    server_chain_pem: bytes

    @property
    def cluster_ca_pem(self) -> bytes:
        """The cluster CA root (what devices pass as ``--ca`` and agents trust)."""
        return certificates_pem([self.cluster_ca.anchor])


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierWorkspace:
    """The paths of a verifier directory (nothing is read until asked)."""

    root: Path

    @property
    def config_file(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def cluster_ca_dir(self) -> Path:
        return self.root / CLUSTER_CA_DIR

    @property
    def cluster_ca_file(self) -> Path:
        return self.cluster_ca_dir / ROOT_CERT_FILE

    @property
    def ear_key_file(self) -> Path:
        return self.root / EAR_KEY_FILE

    @property
    def ear_public_file(self) -> Path:
        return self.root / EAR_PUBLIC_FILE

    @property
    def server_key_file(self) -> Path:
        return self.root / SERVER_DIR / SERVER_KEY_FILE

    @property
    def server_cert_file(self) -> Path:
        return self.root / SERVER_DIR / SERVER_CERT_FILE

    @property
    def registry_file(self) -> Path:
        return self.root / REGISTRY_FILE

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.registry_file.resolve()}"

    def exists(self) -> bool:
        return self.config_file.exists() or self.cluster_ca_dir.exists()

    def load_keys(
        self,
        *,
        cluster_ca_dir: Path | None = None,
        ear_key_file: Path | None = None,
        server_key_file: Path | None = None,
        server_cert_file: Path | None = None,
    ) -> VerifierKeys:
        """Read the CA, EAR key and TLS material (paths may be overridden by the config)."""
        ca_dir = cluster_ca_dir or self.cluster_ca_dir
        ear_file = ear_key_file or self.ear_key_file
        ear_key = read_private_key(ear_file)
        if not isinstance(ear_key, ec.EllipticCurvePrivateKey):
            raise KeyFileError(f"{ear_file}: the EAR signing key must be EC (P-256 or P-384)")
        server_key = read_private_key(server_key_file or self.server_key_file)
        server_chain = read_certificates(server_cert_file or self.server_cert_file)
        return VerifierKeys(
            cluster_ca=CertificateAuthority.load(ca_dir),
            ear_key=ear_key,
            server_key_pem=private_key_pem(server_key),
            server_chain_pem=certificates_pem(server_chain),
        )


def init_workspace(
    directory: str | os.PathLike[str],
    *,
    server_names: tuple[str, ...] = (),
    server_addresses: tuple[str, ...] = (),
    cluster_ca_subject: str = CLUSTER_CA_SUBJECT,
    now: datetime | None = None,
) -> VerifierWorkspace:
    """Create the keys and certificates of a new verifier directory (not the config file).

    Refuses a directory that already holds a verifier (never overwrites a key).
    """
    workspace = VerifierWorkspace(root=Path(directory))
    if workspace.exists():
        raise WorkspaceError(f"{workspace.root} already holds a verifier; refusing to overwrite")
    try:
        workspace.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        (workspace.root / SERVER_DIR).mkdir(mode=0o700, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(f"{workspace.root}: cannot create: {e.strerror or e}") from e
    start = now or datetime.now(UTC)
    # The cluster CA signs operational and server certificates directly (pathLen 0).
    ca = CertificateAuthority.create(subject=cluster_ca_subject, now=start, root_path_length=0)
    ca.save(workspace.cluster_ca_dir)
    ear_key = generate_private_key(KeyAlgorithm.P256)
    if not isinstance(ear_key, ec.EllipticCurvePrivateKey):  # pragma: no cover - P256 is EC
        raise WorkspaceError("EAR key generation returned a non-EC key")
    write_private_key(workspace.ear_key_file, ear_key)
    workspace.ear_public_file.write_bytes(
        ear_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    server_key = generate_private_key(KeyAlgorithm.P256)
    names = tuple(dict.fromkeys((*DEFAULT_SERVER_NAMES, *server_names)))
    addresses = tuple(dict.fromkeys((*DEFAULT_SERVER_ADDRESSES, *server_addresses)))
    server_cert = build_server_certificate(
        public_key=server_key.public_key(),
        issuer=ca,
        dns_names=names,
        ip_addresses=addresses,
        lifetime=SERVER_CERT_LIFETIME,
        now=start,
    )
    write_private_key(workspace.server_key_file, server_key)
    write_certificates(workspace.server_cert_file, [server_cert, *ca.chain])
    return workspace


# ------------------------------------------------------------------------------------------------
# verifier.toml (read by edgetrust.onboarding.config)
# ------------------------------------------------------------------------------------------------


def write_config(
    workspace: VerifierWorkspace,
    *,
    listen: str = DEFAULT_LISTEN,
    feed_listen: str | None = DEFAULT_FEED_LISTEN,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    certificate_lifetime: timedelta = timedelta(hours=1),
    database: str = REGISTRY_FILE,
    ear_format: EarFormat = DEFAULT_EAR_FORMAT,
) -> Path:
    """Write ``verifier.toml`` for a workspace made by :func:`init_workspace`."""
    lines = [
        "# edgetrust verifier configuration (edgetrust verifier serve --config THIS_FILE)",
        "[verifier]",
        f"listen = {_toml(listen)}",
        f"feed_listen = {_toml(feed_listen or '')}",
        f"trust_domain = {_toml(trust_domain)}",
        f"certificate_lifetime_s = {int(certificate_lifetime.total_seconds())}",
        "nonce_ttl_s = 60",
        "endorsement_refresh_s = 5",
        "workers = 8",
        PROCESSES_COMMENT,
        "processes = 1",
        EAR_FORMAT_COMMENT,
        f"ear_format = {_toml(ear_format)}",
        "",
        "[keys]",
        f"cluster_ca = {_toml(CLUSTER_CA_DIR)}",
        f"ear_key = {_toml(EAR_KEY_FILE)}",
        f"server_cert = {_toml(f'{SERVER_DIR}/{SERVER_CERT_FILE}')}",
        f"server_key = {_toml(f'{SERVER_DIR}/{SERVER_KEY_FILE}')}",
        "",
        "[registry]",
        f"url = {_toml(database)}",
        "",
        *METRICS_EXAMPLE,
        "",
    ]
    workspace.config_file.write_text("\n".join(lines))
    load_config(workspace.config_file, env={})  # what we wrote must load
    return workspace.config_file


def _toml(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def load_keys(config: VerifierConfig) -> VerifierKeys:
    """The keys and certificates a configuration names."""
    root = config.path.parent if config.path is not None else Path.cwd()
    return VerifierWorkspace(root=root).load_keys(
        cluster_ca_dir=config.cluster_ca,
        ear_key_file=config.ear_key,
        server_key_file=config.server_key,
        server_cert_file=config.server_cert,
    )
