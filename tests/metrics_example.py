"""The commented ``[metrics]`` example that ``verifier init`` and ``agent init`` write."""

from __future__ import annotations

import tomllib
from pathlib import Path

from edgetrust.service.configuration import METRICS_EXAMPLE


def uncomment_metrics_example(path: Path) -> None:
    """Check that the file at ``path`` holds the example, commented out (so the TOML has no
    ``[metrics]`` table), with its one explanatory line; then uncomment it in place."""
    text = path.read_text()
    lines = text.splitlines()
    start = lines.index("# [metrics]")
    assert lines[start - 1 : start + 2] == list(METRICS_EXAMPLE)
    assert "Prometheus text format" in lines[start - 1]
    assert "no TLS: bind to a private address" in lines[start - 1]
    assert "metrics" not in tomllib.loads(text)
    path.write_text(
        text.replace("# [metrics]\n", "[metrics]\n").replace("# listen = ", "listen = ")
    )
