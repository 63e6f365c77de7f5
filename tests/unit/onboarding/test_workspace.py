"""The verifier directory: keys 0600, a server certificate from the cluster CA for the right
names, and a verifier.toml that onboarding.config reads back."""

from __future__ import annotations

import ipaddress
import stat
import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from edgetrust.errors import WorkspaceError
from edgetrust.onboarding.config import ListenAddress, load_config
from edgetrust.onboarding.workspace import (
    EAR_FORMAT_COMMENT,
    PROCESSES_COMMENT,
    init_workspace,
    load_keys,
    write_config,
)
from tests.metrics_example import uncomment_metrics_example


@pytest.fixture(scope="module")
def workspace_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws") / "verifier"
    init_workspace(root, server_names=("verifier.local",), server_addresses=("10.0.0.7",))
    return root


def test_keys_are_private(workspace_dir: Path) -> None:
    for key in ("ear-key.pem", "server/key.pem", "cluster-ca/root-key.pem"):
        mode = stat.S_IMODE((workspace_dir / key).stat().st_mode)
        assert mode == 0o600, key
    assert stat.S_IMODE(workspace_dir.stat().st_mode) == 0o700


def test_server_certificate_names_and_issuer(workspace_dir: Path) -> None:
    chain = x509.load_pem_x509_certificates((workspace_dir / "server/cert.pem").read_bytes())
    server, root = chain
    server.verify_directly_issued_by(root)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "verifier.local"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
    }
    assert root == x509.load_pem_x509_certificate(
        (workspace_dir / "cluster-ca/root-cert.pem").read_bytes()
    )


def test_existing_directory_is_refused(workspace_dir: Path) -> None:
    with pytest.raises(WorkspaceError, match="already holds a verifier"):
        init_workspace(workspace_dir)


def test_written_config_loads_back(tmp_path: Path) -> None:
    workspace = init_workspace(tmp_path / "v")
    path = write_config(
        workspace,
        listen="0.0.0.0:9443",
        feed_listen=None,
        trust_domain="fleet.example",
        certificate_lifetime=timedelta(minutes=30),
        database="postgresql://u:p@db.example/edgetrust",
    )
    config = load_config(path, env={})
    assert str(config.listen) == "0.0.0.0:9443"
    assert config.feed_listen is None
    assert config.trust_domain == "fleet.example"
    assert config.certificate_lifetime == timedelta(minutes=30)
    assert config.database_url == "postgresql://u:p@db.example/edgetrust"
    keys = load_keys(config)
    assert keys.cluster_ca.anchor == workspace.load_keys().cluster_ca.anchor


def test_written_config_sets_processes(tmp_path: Path) -> None:
    """The template names ``processes`` (with when to raise it) and the loader reads it."""
    path = write_config(init_workspace(tmp_path / "v"))
    text = path.read_text()
    assert tomllib.loads(text)["verifier"]["processes"] == 1
    lines = text.splitlines()
    assert lines[lines.index("processes = 1") - 1] == PROCESSES_COMMENT
    assert load_config(path, env={}).processes == 1
    path.write_text(text.replace("processes = 1", "processes = 4"))
    assert load_config(path, env={}).processes == 4
    env = {"EDGETRUST_VERIFIER_PROCESSES": "2"}
    assert load_config(path, env=env).processes == 2  # the environment wins over the file


def test_written_config_sets_ear_format(tmp_path: Path) -> None:
    """The template names ``ear_format`` (one comment line above it) and the loader reads it."""
    path = write_config(init_workspace(tmp_path / "v"))
    text = path.read_text()
    assert tomllib.loads(text)["verifier"]["ear_format"] == "jwt"
    lines = text.splitlines()
    assert lines[lines.index('ear_format = "jwt"') - 1] == EAR_FORMAT_COMMENT
    assert load_config(path, env={}).ear_format == "jwt"
    path.write_text(text.replace('ear_format = "jwt"', 'ear_format = "cwt"'))
    assert load_config(path, env={}).ear_format == "cwt"
    assert load_config(path, env={"EDGETRUST_EAR_FORMAT": "jwt"}).ear_format == "jwt"
    path.unlink()
    path = write_config(init_workspace(tmp_path / "w"), ear_format="cwt")
    assert load_config(path, env={}).ear_format == "cwt"


def test_default_database_is_next_to_the_config(tmp_path: Path) -> None:
    workspace = init_workspace(tmp_path / "v")
    config = load_config(write_config(workspace), env={})
    assert config.database_url == f"sqlite:///{(tmp_path / 'v' / 'registry.db').resolve()}"


def test_written_config_shows_a_metrics_example_that_loads_when_uncommented(
    tmp_path: Path,
) -> None:
    """``[metrics]`` is commented out (off by default, the file still loads); uncommented, the
    loaded configuration serves metrics on the example address."""
    path = write_config(init_workspace(tmp_path / "v"))
    assert load_config(path, env={}).metrics_listen is None
    uncomment_metrics_example(path)
    config = load_config(path, env={})
    assert config.metrics_listen == ListenAddress(host="127.0.0.1", port=9464)
    assert str(config.listen) == "127.0.0.1:7443"  # the other settings are untouched
