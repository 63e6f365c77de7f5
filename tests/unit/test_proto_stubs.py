"""The committed gRPC stubs match proto/edgetrust/v1/*.proto (scripts/gen_proto.sh --check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_stubs_are_up_to_date() -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), "--check"],
        capture_output=True,
        text=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_stubs_import_as_one_package() -> None:
    from edgetrust._proto.edgetrust.v1 import (  # noqa: F401
        inference_pb2_grpc,
        revocation_pb2_grpc,
        verifier_pb2_grpc,
    )
