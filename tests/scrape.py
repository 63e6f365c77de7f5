"""Scrape a live metrics endpoint (real HTTP) into {(name, labels): value} for the tests."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``url`` (``http://127.0.0.1:PORT/metrics``), keyed by name and labels."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a test URL
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample; 0 when absent (a labelled counter appears once it moved)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
