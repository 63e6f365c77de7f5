"""Walks the imports of src/edgetrust (ast) and keeps the layering rules of STYLE.md true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "edgetrust"

# subpackage -> the edgetrust subpackages it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "certs": {"errors"},
    "attest": {"errors", "certs"},
    "onboarding": {"errors", "certs", "attest", "_proto", "service"},
    "offload": {"errors", "certs", "attest", "_proto", "service"},
    "service": {"errors"},
    "cli": {"errors", "certs", "attest", "onboarding", "offload", "service", "_proto", "__init__"},
    "__init__": set(),
}

# third-party codec/runtime -> the one module allowed to import it
ONE_HOME: dict[str, str] = {
    "cbor2": "attest/cbor.py",
    "onnxruntime": "offload/runtime.py",
}

# modules that must not read the clock (time is a parameter)
PURE = ["certs/chain.py", "attest/appraisal.py", "attest/conformance.py"]


def _modules() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if "_proto" not in p.parts]


def _top(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_layering(path: Path) -> None:
    top = _top(path)
    allowed = ALLOWED.get(top, {"errors"}) | {top}
    for name in _imports(path):
        if name == "edgetrust":
            continue
        if name.startswith("edgetrust."):
            target = name.split(".")[1]
            assert target in allowed, f"{path.relative_to(SRC)} may not import {name}"
        root = name.split(".")[0]
        if root in ONE_HOME:
            home = ONE_HOME[root]
            assert str(path.relative_to(SRC)) == home, f"{root} may only be imported in {home}"


def test_nothing_imports_cli() -> None:
    for path in _modules():
        if _top(path) == "cli":
            continue
        for name in _imports(path):
            assert not name.startswith("edgetrust.cli"), f"{path} imports the CLI"


@pytest.mark.parametrize("rel", PURE)
def test_pure_cores_do_not_read_the_clock(rel: str) -> None:
    path = SRC / rel
    if not path.exists():
        pytest.fail(f"pure core {rel} is missing")
    text = path.read_text()
    for needle in ("datetime.now(", "datetime.utcnow(", "time.time(", "date.today("):
        assert needle not in text, f"{rel} reads the clock ({needle})"


def test_no_assert_in_src() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text())
        asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
        assert not asserts, f"{path.relative_to(SRC)} uses assert at lines {asserts}"
