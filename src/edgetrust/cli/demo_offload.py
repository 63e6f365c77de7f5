"""The offload half of ``edgetrust demo``: the agent, classification, and revocation.

Each step runs what the production commands run: ``edgetrust agent serve`` (an in-process
:class:`~edgetrust.offload.agent.Agent` loaded from an ``agent.toml``, following the verifier's
revocation feed), ``edgetrust classify`` (the one client API,
:class:`~edgetrust.offload.client.Classifier`, configured through ``EDGETRUST_*`` settings only)
and ``edgetrust registry revoke`` (a revocation written to the registry on the operator's own
connection).
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from edgetrust.certs.loading import load_certificates
from edgetrust.cli.demo_state import (
    TRUST_DOMAIN,
    WAIT_S,
    DemoState,
    StepLog,
    need,
    wait_until,
)
from edgetrust.errors import Error, PermissionDeniedError, RevokedError
from edgetrust.offload.agent import Agent
from edgetrust.offload.config import AgentConfig
from edgetrust.offload.models import DEFAULT_MODEL, Sample, digit_samples
from edgetrust.offload.runtime import Prediction
from edgetrust.offload.setup import init_agent_directory
from edgetrust.onboarding.store import SqlRegistryStore

__all__ = ["REVOCATION_BUDGET_S", "agent_step", "classification_step", "revocation_step"]

INT8_MODEL: Final = f"{DEFAULT_MODEL}-int8"
#: How long a revocation may take to reach the agent before the step fails (the goal is ~1 s).
REVOCATION_BUDGET_S: Final = 2.0
#: The settings shown for each client configuration (the certificate paths are in the JSON).
_SHOWN: Final = ("EDGETRUST_BACKEND", "EDGETRUST_MODEL", "EDGETRUST_AGENT")


def _prediction(p: Prediction) -> dict[str, Any]:
    return {
        "label": p.label,
        "score": round(p.score, 4),
        "backend": p.backend,
        "latency_ms": round(p.latency_ms, 3),
    }


# ------------------------------------------------------------------------------------------------
# 4. agent
# ------------------------------------------------------------------------------------------------


def agent_step(state: DemoState, step: StepLog) -> None:
    keys, server = need(state.keys, "verifier keys"), need(state.server, "verifier")
    files = init_agent_directory(  # what `edgetrust agent init` writes
        state.workdir / "agent",
        cluster_ca=keys.cluster_ca.issuer,
        cluster_ca_certificates=[keys.cluster_ca_pem],
        listen="127.0.0.1:0",
        trust_domain=TRUST_DOMAIN,
        feed=str(server.feed_address),
        models=[DEFAULT_MODEL],
        lifetime=timedelta(days=1),
        heartbeat_interval_ms=200,
    )
    [cert] = load_certificates(files.certificate.read_bytes())
    config_file = files.config
    config = AgentConfig.load(config_file, environ={})  # the demo ignores EDGETRUST_AGENT_*
    agent = Agent(config).start()
    state.resources.callback(agent.stop, 0.5)
    state.agent = agent
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    eku = [
        name
        for oid, name in (
            (ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth"),
            (ExtendedKeyUsageOID.CLIENT_AUTH, "clientAuth"),
        )
        if oid in usages
    ]
    state.say(
        f"server certificate    {cert.subject.rfc4514_string()} from the cluster CA "
        f"({', '.join(eku)})"
    )
    state.say(
        f"serving               {', '.join(agent.models)} on {agent.address} "
        "(mTLS: cluster-CA client certificates only)"
    )

    def synced() -> bool:
        try:
            agent.revocations.check_fresh()
        except Error:
            return False
        return True

    waited = wait_until(synced, WAIT_S)
    if waited is not None:
        state.say(
            f"revocation feed       following {server.feed_address}: in sync after "
            f"{waited * 1000:.0f} ms ({agent.revocations.last_seq} revocations so far)"
        )
    step.check("agent certificate has serverAuth and clientAuth", len(eku) == 2)
    step.check(f"revocation feed synchronised within {WAIT_S:g} s", waited is not None)
    step.facts |= {
        "address": agent.address,
        "models": list(agent.models),
        "certificate": cert.subject.rfc4514_string(),
        "extended_key_usage": eku,
        "config": str(config_file),
        "feed": server.feed_address,
        "feed_synchronised_ms": None if waited is None else round(waited * 1000, 1),
    }


# ------------------------------------------------------------------------------------------------
# 5. classification
# ------------------------------------------------------------------------------------------------


def classification_step(state: DemoState, step: StepLog) -> None:
    by_label: dict[str, Sample] = {}
    for sample in digit_samples():
        by_label.setdefault(sample.label, sample)
    state.samples = samples = list(by_label.values())
    first = state.devices[0]
    configs = {
        "local fp32": state.client_environment(None, DEFAULT_MODEL),
        "local int8": state.client_environment(None, INT8_MODEL),
        "remote": state.client_environment(first, DEFAULT_MODEL),
    }
    for name, environ in configs.items():
        shown = " ".join(f"{k}={v}" for k, v in environ.items() if k in _SHOWN)
        extra = " + the device's certificate, key and the cluster CA" if "remote" in name else ""
        state.say(f"{name:<11} {shown}{extra}")
    results: dict[str, list[Prediction]] = {}
    for name, environ in configs.items():
        classifier = state.classifier(environ)
        if classifier.remote is not None:
            state.remote[first.ueid] = classifier
        classifier.classify(samples[0].path)  # warm-up: model load, first run, HTTP/2 stream
        results[name] = [classifier.classify(s.path, top_k=3) for s in samples]
    state.say("same code for each: Classifier(config).classify(image) (after one warm-up call)")
    header = "".join(f"{name:<24}" for name in ("local fp32", "local int8", "remote (mTLS)"))
    state.say(f"{'image':<15}{'true':<6}{header}")
    rows = []
    for i, sample in enumerate(samples):
        cells = {name: results[name][i] for name in configs}
        line = "".join(
            f"{p.label} {p.score:.3f} {p.latency_ms:6.2f} ms      " for p in cells.values()
        )
        state.say(f"{sample.path.name:<15}{sample.label:<6}{line}")
        rows.append(
            {
                "image": sample.path.name,
                "true_label": sample.label,
                **{name.replace(" ", "_"): _prediction(p) for name, p in cells.items()},
            }
        )
    fp32, int8, remote = results["local fp32"], results["local int8"], results["remote"]
    agree = sum(a.label == b.label for a, b in zip(fp32, remote, strict=True))
    int8_agree = sum(a.label == b.label for a, b in zip(fp32, int8, strict=True))
    summary = {
        name: {
            "correct": sum(p.label == s.label for p, s in zip(ps, samples, strict=True)),
            "median_latency_ms": round(statistics.median(p.latency_ms for p in ps), 3),
        }
        for name, ps in results.items()
    }
    n = len(samples)
    medians = ", ".join(f"{k} {v['median_latency_ms']:.2f} ms" for k, v in summary.items())
    state.say(f"median latency        {medians}")
    state.say(
        f"agreement             remote top-1 == local fp32 top-1 on {agree}/{n}; int8 agrees "
        f"with fp32 on {int8_agree}/{n}; fp32 correct on {summary['local fp32']['correct']}/{n}"
    )
    # Every other onboarded device is served too, each over its own mTLS connection.
    others = []
    for device in state.devices[1:]:
        classifier = state.classifier(state.client_environment(device, DEFAULT_MODEL))
        state.remote[device.ueid] = classifier
        p = classifier.classify(samples[0].path)
        others.append({"device": device.name, **_prediction(p)})
        step.check(f"{device.name} served remotely", p.backend == "remote")
    if others:
        names = ", ".join(o["device"] for o in others)
        state.say(f"also served remotely  {names} (each over its own mTLS connection)")
    step.check(f"remote top-1 == local fp32 top-1 on all {n} images", agree == n)
    step.check("remote predictions came from the agent", all(p.backend == "remote" for p in remote))
    step.check(
        "local predictions ran on the device", all(p.backend == "local" for p in fp32 + int8)
    )
    step.facts |= {
        "images": n,
        "configurations": configs,
        "predictions": rows,
        "remote_equals_local_top1": agree == n,
        "int8_agrees_with_fp32": int8_agree,
        "summary": summary,
        "other_devices": others,
    }


# ------------------------------------------------------------------------------------------------
# 7. revocation
# ------------------------------------------------------------------------------------------------


def revocation_step(state: DemoState, step: StepLog) -> None:
    agent, store = need(state.agent, "agent"), need(state.store, "registry")
    victim, others = state.devices[0], state.devices[1:]
    client = state.remote[victim.ueid]
    image = state.samples[0].path
    before = client.classify(image)
    state.say(
        f"{victim.name} classifies on its open client: {before.label} ({before.latency_ms:.2f} ms)"
    )
    url = store.url
    with SqlRegistryStore(url, create=False) as registry:  # the operator's own connection
        event = registry.revoke_device(
            victim.ueid, reason="demo: device reported stolen", actor="demo", now=datetime.now(UTC)
        )
    revoked_at = time.monotonic()
    state.say(f"operator revokes {victim.name} in the registry: feed seq {event.seq}, as with")
    state.say(f"  edgetrust registry revoke {victim.ueid.hex()} --db {url}")
    learned = wait_until(lambda: agent.revocations.last_seq >= event.seq, WAIT_S)
    if learned is not None:
        state.say(f"the agent heard it on the revocation feed after {learned * 1000:.0f} ms")
    refusal: Error | None = None
    try:
        after = client.classify(image)
        state.say(f"{victim.name} next call: ANSWERED ({after.label}), a refusal was expected")
    except (RevokedError, PermissionDeniedError) as e:
        refusal = e
        state.say(f"{victim.name} next call on the same client: PERMISSION_DENIED")
        state.say(f"  {type(e).__name__}: {e.message}")
    refused_after = time.monotonic() - revoked_at
    served = []
    for device in others:
        p = state.remote[device.ueid].classify(image)
        served.append({"device": device.name, **_prediction(p)})
        state.say(f"{device.name} still served: {p.label} ({p.latency_ms:.2f} ms)")
    step.check(
        f"agent learned the revocation within {REVOCATION_BUDGET_S:g} s",
        learned is not None and learned <= REVOCATION_BUDGET_S,
    )
    step.check(
        "revoked device refused with PERMISSION_DENIED (revoked)",
        isinstance(refusal, RevokedError),
    )
    if others:
        all_served = len(served) == len(others) and all(s["backend"] == "remote" for s in served)
        step.check("other devices still served", all_served)
    else:
        state.say("(no other device to show still served: --devices 1)")
    step.facts |= {
        "device": victim.name,
        "ueid": victim.ueid.hex(),
        "feed_seq": event.seq,
        "agent_learned_ms": None if learned is None else round(learned * 1000, 1),
        "refused": refusal is not None,
        "refusal": None
        if refusal is None
        else {
            "status": "PERMISSION_DENIED",
            "error": type(refusal).__name__,
            "message": refusal.message,
        },
        "refused_after_ms": round(refused_after * 1000, 1),
        "others_served": served,
    }
