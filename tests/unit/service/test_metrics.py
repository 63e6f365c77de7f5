"""The metrics endpoint (real HTTP on 127.0.0.1) and the multiprocess directory."""

from __future__ import annotations

import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from edgetrust.errors import ConfigError
from edgetrust.service.metrics import (
    MULTIPROC_ENV,
    MetricsEndpoint,
    MultiprocessMetrics,
    split_host_port,
)
from tests.scrape import scrape, value


def _registry() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    return registry, Counter("things", "Things.", registry=registry)


def test_serves_its_own_registry_on_port_0() -> None:
    registry, things = _registry()
    endpoint = MetricsEndpoint("127.0.0.1:0", registry).start()
    try:
        assert endpoint.port != 0
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics"
        things.inc(3)
        assert value(scrape(endpoint.url), "things_total") == 3
        things.inc()
        assert value(scrape(endpoint.url), "things_total") == 4
    finally:
        endpoint.close()
    endpoint.close()  # idempotent
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(endpoint.url, timeout=2)  # noqa: S310 - test URL


def test_ipv6_address_in_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        endpoint = MetricsEndpoint("[::1]:0", _registry()[0])
    except ConfigError as e:  # IPv6 compiled in but no ::1 here
        pytest.skip(f"no ::1: {e.message}")
    endpoint.close()
    assert endpoint.address == f"[::1]:{endpoint.port}"


@pytest.mark.parametrize("listen", ["nope", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:70000", ":80",
                                    "::1:80"])  # fmt: skip
def test_bad_address_is_a_config_error_naming_it(listen: str) -> None:
    with pytest.raises(ConfigError, match="metrics address") as caught:
        split_host_port(listen)
    assert repr(listen) in caught.value.message
    with pytest.raises(ConfigError):
        MetricsEndpoint(listen, _registry()[0])


def test_taken_port_is_a_config_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"cannot serve metrics on {listen}"):
            MetricsEndpoint(listen, _registry()[0])


def test_unknown_host_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"cannot serve metrics on no-such-host\.invalid:9464"):
        MetricsEndpoint("no-such-host.invalid:9464", _registry()[0])


def test_multiprocess_directory_environment_and_cleanup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    group = MultiprocessMetrics()
    directory = Path(group.directory)
    assert directory.is_dir()
    with group.child_environment():
        assert os.environ[MULTIPROC_ENV] == group.directory
    assert MULTIPROC_ENV not in os.environ
    monkeypatch.setenv(MULTIPROC_ENV, "/elsewhere")
    with group.child_environment():
        assert os.environ[MULTIPROC_ENV] == group.directory
    assert os.environ[MULTIPROC_ENV] == "/elsewhere"
    group.close()
    assert not directory.exists()
