"""``edgetrust models list`` and ``edgetrust models eval`` through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgetrust.cli.main import main
from edgetrust.cli.models import cli


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_list_prints_every_bundled_model() -> None:
    code, out, _ = _run("list")
    assert code == 0
    for name in (
        "digits-mnv3",
        "digits-mnv3-int8",
        "efficientnet-lite0",
        "efficientnet-lite0-int8",
    ):
        assert name in out
    assert "digits_test_top1=0.9972" in out


def test_list_json_has_hashes_and_inputs() -> None:
    code, out, _ = _run("list", "--json")
    assert code == 0
    models = {m["name"]: m for m in json.loads(out)["models"]}
    digits = models["digits-mnv3"]
    assert len(digits["sha256"]) == 64
    assert digits["input"] == {"shape": ["N", 1, 32, 32], "dtype": "float32"}
    assert digits["available"] is True


def test_list_with_a_missing_catalog_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = _run("list", "--catalog", str(tmp_path / "manifest.json"))
    assert code == 2
    assert err.startswith("error: cannot read model manifest")


def test_eval_json_on_the_digits(tmp_path: Path) -> None:
    plot = tmp_path / "plot.png"
    code, out, _ = _run("eval", "--limit", "30", "--json", "--plot", str(plot))
    assert code == 0
    report = json.loads(out)
    assert report["dataset"] == "digits test split"
    assert report["split"] == "test"
    assert [b["backend"] for b in report["backends"]] == ["local-fp32", "local-int8"]
    assert report["backends"][0]["images"] == 30
    assert report["backends"][0]["accuracy"] >= 0.9
    assert plot.read_bytes().startswith(b"\x89PNG")


def test_eval_table_on_imagenet_model_has_no_accuracy() -> None:
    code, out, _ = _run("eval", "--model", "efficientnet-lite0", "--limit", "4")
    assert code == 0
    assert (
        "crops of the held-out photographs (chelsea, rocket, camera, gravel, clock_motion)" in out
    )
    assert "never seen by the int8 model's calibration" in out
    assert "images: held-out split" in out
    assert "local-int8" in out


def test_eval_json_on_imagenet_model_says_held_out() -> None:
    code, out, _ = _run("eval", "--model", "efficientnet-lite0", "--limit", "5", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["split"] == "held-out"
    assert "held-out photographs" in report["dataset"]
    int8 = report["backends"][1]
    assert int8["accuracy"] is None
    assert int8["images"] == 5
    assert 0 <= int8["top1_agreement"] <= int8["top3_agreement"] <= 1


def test_eval_of_an_unknown_model_is_a_one_line_error() -> None:
    code, _, err = _run("eval", "--model", "nope")
    assert code == 2
    assert err.startswith("error: unknown model 'nope'")


def test_eval_remote_without_an_agent_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EDGETRUST_AGENT", "EDGETRUST_CONFIG", "EDGETRUST_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    code, _, err = _run("eval", "--remote", "--limit", "2")
    assert code == 2
    assert err.startswith("error: ")
    assert "agent" in err


def test_eval_remote_with_a_missing_config_is_a_one_line_error() -> None:
    code, _, err = _run("eval", "--remote", "--limit", "2", "--config", "/nonexistent/x.toml")
    assert code == 2
    assert err.startswith("error: cannot read config file")


def test_main_dispatches_to_models() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "list", "--json"])
    assert exit_info.value.code == 0
