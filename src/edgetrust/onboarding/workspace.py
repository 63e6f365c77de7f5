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

``verifier.toml`` (every key optional; relative paths are relative to the file)::

    [verifier]
    listen = "127.0.0.1:7443"          # the device port (server-authenticated TLS)
    feed_listen = "127.0.0.1:7445"     # the revocation feed port (mTLS, cluster CA); "" = off
    trust_domain = "edgetrust.local"   # SPIFFE trust domain of operational certificates
    certificate_lifetime_s = 3600      # operational certificates (<= 1 day)
    nonce_ttl_s = 60
    endorsement_refresh_s = 5          # how stale the cached endorsements may get
    workers = 8                        # gRPC handler threads

    [keys]
    cluster_ca = "cluster-ca"
    ear_key = "ear-key.pem"
    server_cert = "server/cert.pem"
    server_key = "server/key.pem"

    [registry]
    url = "registry.db"                # a path (SQLite) or a URL: sqlite:///..., postgresql://...

Environment overrides: ``EDGETRUST_DB_URL``, ``EDGETRUST_VERIFIER_LISTEN``,
``EDGETRUST_VERIFIER_FEED_LISTEN``, ``EDGETRUST_VERIFIER_TRUST_DOMAIN``; command-line flags
override both.

The server certificate names ``localhost`` and ``127.0.0.1`` plus any host names or addresses given
to :func:`init_workspace`: a device connecting by another name fails TLS hostname checks.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

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
from edgetrust.errors import ConfigError, KeyFileError, WorkspaceError

__all__ = [
    "CLUSTER_CA_SUBJECT",
    "VerifierConfig",
    "VerifierKeys",
    "VerifierWorkspace",
    "init_workspace",
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
# verifier.toml
# ------------------------------------------------------------------------------------------------

DEFAULT_LISTEN: Final = "127.0.0.1:7443"
DEFAULT_FEED_LISTEN: Final = "127.0.0.1:7445"
DEFAULT_TRUST_DOMAIN: Final = "edgetrust.local"

_VERIFIER_KEYS: Final = {
    "listen",
    "feed_listen",
    "trust_domain",
    "certificate_lifetime_s",
    "nonce_ttl_s",
    "endorsement_refresh_s",
    "workers",
}
_KEYS_KEYS: Final = {"cluster_ca", "ear_key", "server_cert", "server_key"}


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierConfig:
    """``verifier.toml`` resolved: absolute paths, environment applied (see the module doc)."""

    path: Path
    listen: str = DEFAULT_LISTEN
    feed_listen: str | None = DEFAULT_FEED_LISTEN
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    certificate_lifetime: timedelta = timedelta(hours=1)
    nonce_ttl: timedelta = timedelta(seconds=60)
    endorsement_refresh: timedelta = timedelta(seconds=5)
    workers: int = 8
    cluster_ca: Path
    ear_key: Path
    server_cert: Path
    server_key: Path
    database_url: str

    def __post_init__(self) -> None:
        _check_address(self.listen, "listen")
        if self.feed_listen is not None:
            _check_address(self.feed_listen, "feed_listen")
        if not 1 <= self.workers <= 256:
            raise ConfigError(f"workers must be 1..256, not {self.workers}")
        for name in ("certificate_lifetime", "nonce_ttl", "endorsement_refresh"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigError(f"{name} must be positive")

    def load_keys(self) -> VerifierKeys:
        return VerifierWorkspace(root=self.path.parent).load_keys(
            cluster_ca_dir=self.cluster_ca,
            ear_key_file=self.ear_key,
            server_key_file=self.server_key,
            server_cert_file=self.server_cert,
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], env: Mapping[str, str] | None = None
    ) -> VerifierConfig:
        """Read ``path`` and apply the ``EDGETRUST_*`` environment overrides."""
        file = Path(path).resolve()
        env = os.environ if env is None else env
        try:
            with file.open("rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"cannot read config file {file}: {e.strerror or e}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"config file {file} is not valid TOML: {e}") from e
        unknown = sorted(set(data) - {"verifier", "keys", "registry"})
        if unknown:
            raise ConfigError(f"{file}: unknown tables {', '.join(unknown)}")
        verifier = _table(data, "verifier", file, _VERIFIER_KEYS)
        keys = _table(data, "keys", file, _KEYS_KEYS)
        registry = _table(data, "registry", file, {"url"})
        base = file.parent
        feed = env.get(
            "EDGETRUST_VERIFIER_FEED_LISTEN",
            _text(verifier, "feed_listen", DEFAULT_FEED_LISTEN, empty=True),
        )
        return cls(
            path=file,
            listen=env.get("EDGETRUST_VERIFIER_LISTEN")
            or _text(verifier, "listen", DEFAULT_LISTEN),
            feed_listen=feed or None,
            trust_domain=env.get("EDGETRUST_VERIFIER_TRUST_DOMAIN")
            or _text(verifier, "trust_domain", DEFAULT_TRUST_DOMAIN),
            certificate_lifetime=timedelta(
                seconds=_number(verifier, "certificate_lifetime_s", 3600)
            ),
            nonce_ttl=timedelta(seconds=_number(verifier, "nonce_ttl_s", 60)),
            endorsement_refresh=timedelta(seconds=_number(verifier, "endorsement_refresh_s", 5)),
            workers=int(_number(verifier, "workers", 8)),
            cluster_ca=base / _text(keys, "cluster_ca", CLUSTER_CA_DIR),
            ear_key=base / _text(keys, "ear_key", EAR_KEY_FILE),
            server_cert=base / _text(keys, "server_cert", f"{SERVER_DIR}/{SERVER_CERT_FILE}"),
            server_key=base / _text(keys, "server_key", f"{SERVER_DIR}/{SERVER_KEY_FILE}"),
            database_url=database_url(
                env.get("EDGETRUST_DB_URL") or _text(registry, "url", REGISTRY_FILE), base
            ),
        )


def database_url(value: str, base: Path) -> str:
    """A registry URL; a bare path (or a relative SQLite URL) is resolved against ``base``."""
    if "://" not in value:
        return f"sqlite:///{(base / value).resolve()}"
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////"):
        rest = value.removeprefix("sqlite:///")
        if rest and rest != ":memory:" and not rest.startswith("/"):
            return f"sqlite:///{(base / rest).resolve()}"
    return value


def write_config(
    workspace: VerifierWorkspace,
    *,
    listen: str = DEFAULT_LISTEN,
    feed_listen: str | None = DEFAULT_FEED_LISTEN,
    trust_domain: str = DEFAULT_TRUST_DOMAIN,
    certificate_lifetime: timedelta = timedelta(hours=1),
    database: str = REGISTRY_FILE,
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
    ]
    workspace.config_file.write_text("\n".join(lines))
    VerifierConfig.load(workspace.config_file, env={})  # what we wrote must load
    return workspace.config_file


def _toml(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _table(data: Mapping[str, Any], name: str, file: Path, allowed: set[str]) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{file}: [{name}] must be a table")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{file}: [{name}] has unknown keys {', '.join(unknown)}")
    return value


def _text(table: Mapping[str, Any], name: str, default: str, *, empty: bool = False) -> str:
    value = table.get(name, default)
    if not isinstance(value, str) or (not value and not empty):
        raise ConfigError(f"{name} must be a non-empty string")
    return value


def _number(table: Mapping[str, Any], name: str, default: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number")
    return float(value)


def _check_address(address: str, what: str) -> None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{what} must be HOST:PORT, not {address!r}")
