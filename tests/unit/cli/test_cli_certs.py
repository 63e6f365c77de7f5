"""``edgetrust ca init`` / ``certs show`` / ``certs verify``: outputs, JSON shapes, exit codes."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from edgetrust.certs.ca import CertificateAuthority
from edgetrust.certs.dice_ext import TCB_INFO_OID
from edgetrust.certs.loading import certificates_pem
from edgetrust.cli.main import cli
from tests.unit.certs import factory

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "external"
CERBERUS = VECTORS / "dice-cerberus"
OPEN_DICE = VECTORS / "dice-open-dice-kat" / "x509_ed25519_cert_zero_input.der"
AT = factory.NOW.isoformat()
ENTRY_KEYS = ["subject", "issuer", "tcb_info", "ueid", "open_dice"]


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str, code: int = 0) -> Any:
    exit_code, out, err = _run(*args, "--json")
    assert exit_code == code, err
    return json.loads(out)


def _one_line_error(err: str) -> None:
    assert err.startswith("error: ")
    assert len(err.strip().splitlines()) <= 2  # the error, and at most a hint
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def chain_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated 4-layer P-256 chain: root.pem, a PEM bundle (alias2, deviceid), alias1 DER."""
    directory = tmp_path_factory.mktemp("chain")
    chain = factory.build("p256")
    files = {
        "root": directory / "root.pem",
        "bundle": directory / "bundle.pem",
        "alias1": directory / "alias1.der",
        "root_key": directory / "root-pub.pem",
    }
    files["root"].write_bytes(certificates_pem([chain.root]))
    files["bundle"].write_bytes(certificates_pem([chain.certs[2], chain.certs[0]]))
    files["alias1"].write_bytes(chain.certs[1].public_bytes(serialization.Encoding.DER))
    files["root_key"].write_bytes(
        chain.root_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return files


# --------------------------------------------------------------------------------------------
# ca init
# --------------------------------------------------------------------------------------------


def test_ca_init(tmp_path: Path) -> None:
    target = tmp_path / "factory-ca"
    code, out, err = _run("ca", "init", str(target), "--intermediate", "--subject", "CN=Acme,O=A")
    assert code == 0, err
    assert "root: CN=Acme,O=A" in out
    assert "intermediate: CN=intermediate CA,O=A" in out
    assert stat.S_IMODE((target / "root-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((target / "intermediate-key.pem").stat().st_mode) == 0o600
    loaded = CertificateAuthority.load(target)
    assert loaded.intermediate is not None
    code, _, err = _run("ca", "init", str(target))
    assert code == 2
    _one_line_error(err)
    assert "refusing to overwrite" in err


def test_ca_init_json_p384(tmp_path: Path) -> None:
    summary = _json("ca", "init", str(tmp_path / "c"), "--key-alg", "p384")
    assert summary["root"]["key"] == "EC P-384"
    assert summary["intermediate"] is None
    assert len(summary["files"]) == 2


def test_ca_init_bad_subject(tmp_path: Path) -> None:
    code, _, err = _run("ca", "init", str(tmp_path / "c"), "--subject", "garbage")
    assert code == 2
    _one_line_error(err)


# --------------------------------------------------------------------------------------------
# certs show
# --------------------------------------------------------------------------------------------


def test_show_cerberus_text() -> None:
    code, out, err = _run("certs", "show", str(CERBERUS / "X509_CERTCA_ECC_CA_UEID_SVN.der"))
    assert code == 0, err
    assert "subject           CN=RIoT" in out
    assert "CA:TRUE, pathLen:0  [critical]" in out
    assert "keyCertSign  [critical]" in out
    assert "tcg-dice-TcbInfo  version=1.2.3.4 svn=0 layer=0 fwid=sha256:8869de57" in out
    assert "tcg-dice-Ueid     1122334455667788" in out


def test_show_json_fields() -> None:
    (view,) = _json("certs", "show", str(CERBERUS / "X509_CERTCA_ECC_CA_TCBINFO_CRIT.der"))
    assert view["serial"] == "3031323334353637"
    assert view["public_key"]["type"] == "EC P-256"
    assert view["tcb_info"]["critical"] is True
    assert view["tcb_info"]["value"]["svn"] == 0x12345678
    assert view["key_usage"] == {"critical": True, "usages": ["keyCertSign"]}
    assert view["subject_key_id"] == "c6d1568d6a8b2da40b12f912dddd491735067b45"


def test_show_open_dice() -> None:
    (view,) = _json("certs", "show", str(OPEN_DICE))
    assert view["subject"] == "serialNumber=67c22a8859062b986818e8e72b0bcd9f59349c89"
    assert view["open_dice"]["value"]["mode"] == "not-configured"
    assert view["open_dice"]["value"]["code_hash"] == "00" * 64


def test_show_many_and_malformed_dice(tmp_path: Path) -> None:
    layers = factory.specs()
    riot = factory.riot_composite_device_id(factory.key("p256"), b"\x01" * 32)
    layers["alias1"].extensions = [(factory.raw_extension(TCB_INFO_OID, riot), True)]
    chain = factory.build("p256", layers)
    (tmp_path / "c.pem").write_bytes(certificates_pem(chain.certs))
    code, out, err = _run("certs", "show", str(tmp_path / "c.pem"))
    assert code == 0, err
    assert "# certificate 3 of 3" in out
    assert "MALFORMED: TcbInfo: the extension 2.23.133.5.4.1 holds the old Microsoft RIoT" in out


def test_show_unusable_file(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"hello")
    code, _, err = _run("certs", "show", str(tmp_path / "x"))
    assert code == 2
    _one_line_error(err)


# --------------------------------------------------------------------------------------------
# certs verify
# --------------------------------------------------------------------------------------------


def test_verify_valid_chain_any_order_pem_and_der(chain_files: dict[str, Path]) -> None:
    verdict = _json(
        "certs", "verify", "--anchor", str(chain_files["root"]), "--at", AT,
        str(chain_files["alias1"]), str(chain_files["bundle"]),
    )  # fmt: skip
    assert list(verdict) == ["valid", "error", "chain"]
    assert verdict["valid"] is True
    assert verdict["error"] is None
    assert [e["subject"] for e in verdict["chain"]] == ["CN=Alias L2", "CN=Alias L1", "CN=DeviceID"]
    for entry in verdict["chain"]:
        assert list(entry) == ENTRY_KEYS
    assert verdict["chain"][0]["tcb_info"][0]["version"] == "2.1.0"
    assert verdict["chain"][2]["ueid"] == factory.UEID.hex()
    assert verdict["chain"][0]["open_dice"] is None


def test_verify_text_with_a_public_key_anchor(chain_files: dict[str, Path]) -> None:
    code, out, err = _run(
        "certs", "verify", "--anchor", str(chain_files["root_key"]), "--at", AT,
        str(chain_files["bundle"]), str(chain_files["alias1"]),
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("valid: 3 certificates chain to EC P-256 public key sha256:")
    assert "tcb_info: vendor=edgetrust-test model=sim version=2.1.0 svn=7 layer=2" in out


def test_verify_invalid_is_exit_1(chain_files: dict[str, Path]) -> None:
    late = (factory.NOW + timedelta(days=365 * 30)).isoformat()
    verdict = _json(
        "certs", "verify", "--anchor", str(chain_files["root"]), "--at", late,
        str(chain_files["bundle"]), str(chain_files["alias1"]), code=1,
    )  # fmt: skip
    assert verdict == {
        "valid": False,
        "error": verdict["error"],
        "chain": [],
    }
    assert verdict["error"].startswith("ExpiredError: CN=Test Root expired at")
    code, out, _ = _run(
        "certs", "verify", "--anchor", str(CERBERUS / "X509_CERTSS_ECC_CA.der"),
        str(chain_files["bundle"]), str(chain_files["alias1"]),
    )  # fmt: skip
    assert code == 1
    assert out.startswith("invalid: UntrustedAnchorError: no trust anchor issued CN=DeviceID")


def test_verify_open_dice_with_a_key_anchor(tmp_path: Path) -> None:
    from edgetrust.attest import dice

    key = dice.derive_private_key(bytes(32), dice.KeyAlg.ED25519).public_key()
    anchor = tmp_path / "issuer.der"
    anchor.write_bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    verdict = _json("certs", "verify", "--anchor", str(anchor), str(OPEN_DICE))
    assert verdict["valid"] is True
    assert verdict["chain"][0]["open_dice"]["mode"] == "not-configured"


@pytest.mark.parametrize(
    "args",
    [
        ["--anchor", "missing.pem", "c.pem"],
        ["--anchor", "{root}", "missing.pem"],
        ["--anchor", "{root}", "--at", "tomorrow", "{bundle}"],
        ["--anchor", "{junk}", "{bundle}"],
        ["--anchor", "{root}", "{junk}"],
    ],
)
def test_verify_unusable_input_is_exit_2(
    tmp_path: Path, chain_files: dict[str, Path], args: list[str]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n")
    filled = [
        a.format(root=chain_files["root"], bundle=chain_files["bundle"], junk=junk) for a in args
    ]
    code, out, err = _run("certs", "verify", *filled)
    assert code == 2
    assert out == ""
    _one_line_error(err)


def test_show_and_verify_a_certificate_that_parses_only_lazily(
    tmp_path: Path, chain_files: dict[str, Path]
) -> None:
    # The outer DER is fine (cryptography loads it) but the issuer name does not parse.
    chain = factory.build("p256")
    der = bytearray(chain.certs[0].public_bytes(serialization.Encoding.DER))
    der[der.find(b"Alias L1") - 2] = 0x0D  # the string's tag becomes RELATIVE-OID
    (tmp_path / "damaged.der").write_bytes(bytes(der))
    code, _, err = _run("certs", "show", str(tmp_path / "damaged.der"))
    assert code == 2
    _one_line_error(err)
    code, _, err = _run(
        "certs", "verify", "--anchor", str(chain_files["root"]), str(tmp_path / "damaged.der")
    )
    assert code == 2
    _one_line_error(err)
