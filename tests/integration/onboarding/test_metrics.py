"""The verifier's live metrics over real HTTP while devices onboard over real TLS: one process
(VerifierServer with ``metrics_listen``) and two (``VerifierProcesses``, prometheus_client's
multiprocess mode, the parent serving the sum)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from edgetrust.attest.reference import EndorsementBundle
from edgetrust.errors import ConfigError
from edgetrust.onboarding.config import ListenAddress, load_config
from edgetrust.onboarding.device import VerifierClient
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier_processes import VerifierProcesses
from edgetrust.onboarding.workspace import VerifierWorkspace
from tests.integration.onboarding.conftest import import_bundle, start_verifier
from tests.integration.onboarding.fleet import tamper
from tests.scrape import scrape, value

FLEET = 4
P = "edgetrust_verifier_"


def test_counters_follow_onboardings_and_refusals(
    verifier_dir: Path, bundle: EndorsementBundle, new_device: Any
) -> None:
    running = start_verifier(verifier_dir, bundle=bundle, metrics_listen="127.0.0.1:0")
    try:
        endpoint = running.server.metrics_endpoint
        assert endpoint is not None
        before = scrape(endpoint.url)
        assert value(before, f"{P}challenges_total") == 0
        client = running.client()
        for _ in range(FLEET):
            assert new_device().onboard(client).affirmed
        refused = new_device()
        tamper(refused.directory, "firmware")
        assert not refused.onboard(client).affirmed

        samples = scrape(endpoint.url)
        assert value(samples, f"{P}challenges_total") == FLEET + 1
        assert value(samples, f"{P}attestations_total", result="affirmed") == FLEET
        assert value(samples, f"{P}attestations_total", result="refused") == 1
        assert value(samples, f"{P}attestations_total", result="malformed") == 0
        assert value(samples, f"{P}certificates_issued_total") == FLEET
        assert value(samples, f"{P}attest_duration_seconds_count") == FLEET + 1
        assert value(samples, f"{P}attest_duration_seconds_sum") > 0
        assert value(samples, f"{P}registry_write_batches_total") >= 1
        # the stop line's counters are the same figures
        snapshot = running.server.metrics.snapshot()
        assert snapshot["attest_affirmed"] == FLEET
        assert snapshot["attest_refused"] == 1
        assert value(samples, f"{P}registry_writes_total") == snapshot["registry_writes"]
    finally:
        running.close()


def test_without_metrics_listen_nothing_is_served(
    verifier_dir: Path, bundle: EndorsementBundle
) -> None:
    running = start_verifier(verifier_dir, bundle=bundle)
    try:
        assert running.server.metrics_endpoint is None
    finally:
        running.close()


def test_bad_metrics_address_is_a_config_error(
    verifier_dir: Path, bundle: EndorsementBundle
) -> None:
    with pytest.raises(ConfigError, match="metrics address 'nowhere'"):
        start_verifier(verifier_dir, bundle=bundle, metrics_listen="nowhere")


def test_two_processes_serve_the_sum(
    verifier_dir: Path, bundle: EndorsementBundle, new_device: Any
) -> None:
    workspace = VerifierWorkspace(root=verifier_dir)
    with SqlRegistryStore(workspace.default_database_url) as store:
        import_bundle(store, bundle)
    config = dataclasses.replace(
        load_config(verifier_dir / "verifier.toml", env={}),
        feed_listen=None,
        metrics_listen=ListenAddress(host="127.0.0.1", port=0),
    )
    group = VerifierProcesses(config, 2, grace=2.0, log_level=logging.WARNING)
    group.start()
    try:
        endpoint = group.metrics_endpoint
        assert endpoint is not None
        directory = Path(group._metrics.directory)  # type: ignore[union-attr]
        clients = [VerifierClient(group.address, root_ca_pem=workspace.cluster_ca_file.read_bytes(),
                                  timeout=20) for _ in range(FLEET)]  # fmt: skip
        for client in clients:  # a channel each: SO_REUSEPORT spreads them over both processes
            assert new_device().onboard(client).affirmed
        samples = scrape(endpoint.url)
        for client in clients:
            client.close()
    finally:
        totals = group.stop()
    assert value(samples, f"{P}attestations_total", result="affirmed") == FLEET
    assert value(samples, f"{P}certificates_issued_total") == FLEET
    assert value(samples, f"{P}challenges_total") == FLEET
    assert value(samples, f"{P}attest_duration_seconds_count") == FLEET
    # the same sums as the stop line's, which add up what each process reported
    assert totals["attest_affirmed"] == FLEET
    assert totals["processes_reporting"] == 2
    # synchronised when counters move: a write after the last call shows at the next one
    assert 0 < value(samples, f"{P}registry_writes_total") <= totals["registry_writes"]
    assert not directory.exists()  # the private multiprocess directory is removed at exit
