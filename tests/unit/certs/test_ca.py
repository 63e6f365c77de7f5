"""CertificateAuthority: strong defaults, save with 0600 keys, load with clear errors."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.certs.ca import (
    INTERMEDIATE_CERT_FILE,
    INTERMEDIATE_KEY_FILE,
    ROOT_CERT_FILE,
    ROOT_KEY_FILE,
    CertificateAuthority,
)
from edgetrust.certs.loading import write_private_key
from edgetrust.errors import ConfigError, KeyFileError, WorkspaceError
from tests.unit.certs.factory import NOW


@pytest.fixture(scope="module")
def two_level() -> CertificateAuthority:
    return CertificateAuthority.create(
        subject="CN=Acme Root,O=Acme", key_algorithm="p384", intermediate=True, now=NOW
    )


def _ext(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.Extension:  # type: ignore[type-arg]
    return certificate.extensions.get_extension_for_class(kind)


def test_root_defaults() -> None:
    ca = CertificateAuthority.create(now=NOW)
    root = ca.anchor
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    assert root.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert root.subject == root.issuer
    root.verify_directly_issued_by(root)
    basic = _ext(root, x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length is None
    usage = _ext(root, x509.KeyUsage)
    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign
    assert not usage.value.digital_signature
    ski = _ext(root, x509.SubjectKeyIdentifier).value.digest
    assert _ext(root, x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert ca.issuer.certificate == root
    assert ca.chain == (root,)


def test_p384_with_intermediate(two_level: CertificateAuthority) -> None:
    assert two_level.anchor.public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    assert two_level.intermediate is not None
    middle = two_level.intermediate.certificate
    middle.verify_directly_issued_by(two_level.anchor)
    assert middle.subject.rfc4514_string() == "CN=intermediate CA,O=Acme"
    assert two_level.issuer is two_level.intermediate
    assert two_level.chain == (middle, two_level.anchor)


def test_bounded_path_lengths() -> None:
    ca = CertificateAuthority.create(now=NOW, intermediate=True, intermediate_path_length=0)
    assert ca.intermediate is not None
    basic = _ext(ca.intermediate.certificate, x509.BasicConstraints).value
    assert basic.path_length == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key_algorithm": "ed25519"}, "p256 or p384"),
        ({"key_algorithm": "rsa"}, "unknown CA key algorithm"),
        ({"subject": "not a dn"}, "RFC 4514"),
        ({"subject": ""}, "must not be empty"),
        ({"intermediate": True, "intermediate_subject": "CN=R"}, "must differ"),
    ],
)
def test_create_refusals(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"subject": "CN=R", **kwargs}
    with pytest.raises(ConfigError, match=message):
        CertificateAuthority.create(**arguments)  # type: ignore[arg-type]


def test_save_and_load(tmp_path: Path, two_level: CertificateAuthority) -> None:
    target = tmp_path / "ca"
    written = two_level.save(target)
    assert {p.name for p in written} == {
        ROOT_CERT_FILE,
        ROOT_KEY_FILE,
        INTERMEDIATE_CERT_FILE,
        INTERMEDIATE_KEY_FILE,
    }
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    for key_file in (ROOT_KEY_FILE, INTERMEDIATE_KEY_FILE):
        assert stat.S_IMODE((target / key_file).stat().st_mode) == 0o600
        assert (target / key_file).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = CertificateAuthority.load(target)
    assert loaded.anchor == two_level.anchor
    assert loaded.issuer.certificate == two_level.issuer.certificate
    with pytest.raises(WorkspaceError, match="already holds a CA"):
        two_level.save(target)
    two_level.save(target, overwrite=True)


def test_root_key_may_be_offline(tmp_path: Path, two_level: CertificateAuthority) -> None:
    two_level.save(tmp_path)
    (tmp_path / ROOT_KEY_FILE).unlink()
    loaded = CertificateAuthority.load(tmp_path)
    assert loaded.root_key is None
    assert two_level.intermediate is not None
    assert loaded.issuer.certificate == two_level.intermediate.certificate
    with pytest.raises(WorkspaceError, match="kept offline"):
        _ = loaded.root


def test_load_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="no such CA directory"):
        CertificateAuthority.load(tmp_path / "nope")


def test_load_missing_root_certificate(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match=f"{ROOT_CERT_FILE} is missing"):
        CertificateAuthority.load(tmp_path)


def test_load_missing_intermediate_key(tmp_path: Path, two_level: CertificateAuthority) -> None:
    two_level.save(tmp_path)
    (tmp_path / INTERMEDIATE_KEY_FILE).unlink()
    with pytest.raises(WorkspaceError, match=f"{INTERMEDIATE_KEY_FILE} is missing"):
        CertificateAuthority.load(tmp_path)


def test_load_without_any_issuing_key(tmp_path: Path) -> None:
    CertificateAuthority.create(now=NOW).save(tmp_path)
    (tmp_path / ROOT_KEY_FILE).unlink()
    with pytest.raises(WorkspaceError, match="no intermediate"):
        CertificateAuthority.load(tmp_path)


def test_load_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    CertificateAuthority.create(now=NOW).save(tmp_path)
    (tmp_path / ROOT_KEY_FILE).chmod(0o644)
    with pytest.raises(KeyFileError, match=r"accessible by group or others \(mode 0644\)") as e:
        CertificateAuthority.load(tmp_path)
    assert "chmod 600" in e.value.hint


def test_load_refuses_a_corrupt_key(tmp_path: Path) -> None:
    CertificateAuthority.create(now=NOW).save(tmp_path)
    (tmp_path / ROOT_KEY_FILE).write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyFileError, match=ROOT_KEY_FILE):
        CertificateAuthority.load(tmp_path)


def test_load_refuses_a_corrupt_certificate(tmp_path: Path) -> None:
    CertificateAuthority.create(now=NOW).save(tmp_path)
    (tmp_path / ROOT_CERT_FILE).write_bytes(b"garbage")
    with pytest.raises(KeyFileError, match=ROOT_CERT_FILE):
        CertificateAuthority.load(tmp_path)


def test_load_refuses_a_key_of_another_certificate(tmp_path: Path) -> None:
    CertificateAuthority.create(now=NOW).save(tmp_path)
    (tmp_path / ROOT_KEY_FILE).unlink()
    write_private_key(tmp_path / ROOT_KEY_FILE, ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(KeyFileError, match="does not belong"):
        CertificateAuthority.load(tmp_path)


def test_load_refuses_an_intermediate_from_another_root(tmp_path: Path) -> None:
    CertificateAuthority.create(now=NOW, intermediate=True).save(tmp_path)
    other = tmp_path / "other"
    CertificateAuthority.create(now=NOW).save(other)
    (tmp_path / ROOT_CERT_FILE).write_bytes((other / ROOT_CERT_FILE).read_bytes())
    (tmp_path / ROOT_KEY_FILE).unlink()
    with pytest.raises(WorkspaceError, match="not issued by the root"):
        CertificateAuthority.load(tmp_path)
