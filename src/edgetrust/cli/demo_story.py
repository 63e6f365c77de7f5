"""The end-to-end story ``edgetrust demo`` tells, on one machine, with the real pieces.

Factory -> verifier -> onboarding -> agent -> classification -> a tampered device -> revocation.
Every step runs the library the production commands run (no mocks, no fakes): a provisioned
factory batch, a verifier on 127.0.0.1 with a SQLite registry, simulated devices that boot their
DICE layers and onboard over TLS, an agent that follows the verifier's revocation feed, and the
one client API switched between local and remote inference by configuration only. The steps live
in :mod:`edgetrust.cli.demo_trust` and :mod:`edgetrust.cli.demo_offload`; this module lives in the
CLI package because it is the one place allowed to wire onboarding and offload together.

:class:`DemoStory` runs the steps in order, stops at the first one that does not behave as
expected (later steps build on earlier ones), and always stops what it started.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edgetrust.cli.demo_offload import (
    REVOCATION_BUDGET_S,
    agent_step,
    classification_step,
    revocation_step,
)
from edgetrust.cli.demo_state import DemoState, Narrator, StepLog, StepResult
from edgetrust.cli.demo_trust import (
    TAMPERED_LAYER,
    factory_step,
    onboarding_step,
    tampered_step,
    verifier_step,
)
from edgetrust.errors import Error

__all__ = ["STEPS", "DemoReport", "DemoStory", "Step", "files_of", "remove_tree", "shown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step of the story: what it is called, its heading, why it matters, what it runs."""

    name: str
    title: str
    why: str
    run: Callable[[DemoState, StepLog], None]


#: where the demo's in-process servers log (relative to the working directory)
SERVICE_LOG: Final = "services.log"

STEPS: Final = (
    Step(
        name="factory",
        title="Factory: the manufacturer provisions devices",
        why="Each device gets a secret UDS (0600, it never leaves the device) and a DeviceID "
        "certificate from the manufacturer CA; verifiers get that CA and the firmware's "
        "reference values (the endorsements).",
        run=factory_step,
    ),
    Step(
        name="verifier",
        title="Verifier: the cluster's gatekeeper starts",
        why="It trusts the manufacturer's endorsements, signs attestation results (EAR) and "
        "issues operational certificates from its cluster CA.",
        run=verifier_step,
    ),
    Step(
        name="onboarding",
        title="Onboarding: devices prove who they are and what they run",
        why="Each device boots its DICE layers, asks for a nonce and sends its certificate "
        "chain, an EAT (signed by its last DICE key) and a CSR; only affirming evidence earns "
        "a 1 h operational certificate.",
        run=onboarding_step,
    ),
    Step(
        name="agent",
        title="Agent: the inference node starts",
        why="Its server certificate comes from the cluster CA; it accepts only mTLS clients "
        "with cluster-CA certificates and follows the verifier's revocation feed.",
        run=agent_step,
    ),
    Step(
        name="classification",
        title="Classification: one API, on the device or offloaded",
        why="The same code classifies the same real digit images; only the configuration "
        "(EDGETRUST_BACKEND, ...) says whether the model runs on the device or on the agent.",
        run=classification_step,
    ),
    Step(
        name="tampered",
        title="A tampered device tries to onboard",
        why=f"Its {TAMPERED_LAYER} image was modified after provisioning, so its boot "
        "measurement no longer matches the reference values.",
        run=tampered_step,
    ),
    Step(
        name="revocation",
        title="Revocation: an onboarded device is cut off",
        why="The operator revokes a device in the registry; the agent hears it on the feed and "
        "refuses that device's next call on its already-open connection.",
        run=revocation_step,
    ),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoReport:
    """The whole run."""

    steps: tuple[StepResult, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if s.ok is False), None)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)

    def to_json(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "ok": self.ok,
            "failed_step": failed.name if failed else None,
            "problem": failed.problem if failed else None,
            "seconds": round(self.seconds, 3),
            "steps": {s.name: s.to_json() for s in self.steps},
            "shown": shown(self),
        }


class DemoStory:
    """Runs the demo in ``workdir`` (which must exist and be empty) with ``devices`` devices
    onboarded (one more is provisioned to be tampered with)."""

    def __init__(self, *, workdir: Path, devices: int, narrator: Narrator) -> None:
        self.state = DemoState(workdir=workdir, count=devices, narrator=narrator)
        self.narrator = narrator

    def run(self) -> DemoReport:
        """Every step in order; the ones after a failed step are reported as not run."""
        started = time.monotonic()
        results: list[StepResult] = []
        total = len(STEPS) + 1  # the summary is the last step the CLI prints
        with self.state.resources:  # servers and clients stop here, whatever happened
            for number, step in enumerate(STEPS, start=1):
                if results and not results[-1].ok:
                    results.append(StepResult(name=step.name, title=step.title, ok=None, seconds=0))
                    continue
                self.narrator.step(number, total, step.title, step.why)
                result = self._run(step)
                self.narrator.result(result)
                results.append(result)
        return DemoReport(steps=tuple(results), seconds=time.monotonic() - started)

    def _run(self, step: Step) -> StepResult:
        log = StepLog()
        started = time.monotonic()
        error: str | None = None
        try:
            step.run(self.state, log)
        except Error as e:
            error = f"{type(e).__name__}: {e.message}"
        except OSError as e:  # the working directory's file system (full, read-only, ...)
            error = f"{type(e).__name__}: {e}"
        ok = error is None and bool(log.checks) and all(c.ok for c in log.checks)
        return StepResult(
            name=step.name,
            title=step.title,
            ok=ok,
            seconds=time.monotonic() - started,
            checks=tuple(log.checks),
            facts=dict(log.facts),
            error=error,
        )


def shown(report: DemoReport) -> list[str]:
    """What the run demonstrated, one sentence per step that passed."""
    out: list[str] = []
    for s in report.steps:
        if not s.ok:
            continue
        f = s.facts
        if s.name == "factory":
            out.append(
                f"{f['provisioned']} devices provisioned with 0600 UDS files and DeviceID "
                f"certificates from the manufacturer's issuing CA; endorsements exported"
            )
        elif s.name == "verifier":
            out.append(f"a verifier on {f['address']} imported the endorsements")
        elif s.name == "onboarding":
            out.append(
                f"{f['onboarded']} devices onboarded: EAR affirming, 1 h certificates "
                "with their SPIFFE IDs"
            )
        elif s.name == "agent":
            out.append(f"an mTLS agent on {f['address']} follows the verifier's revocation feed")
        elif s.name == "classification":
            o = f["summary"]
            out.append(
                f"remote top-1 == local top-1 on {f['images']}/{f['images']} digits (median "
                f"{o['local fp32']['median_latency_ms']:.2f} ms local fp32, "
                f"{o['local int8']['median_latency_ms']:.2f} ms int8, "
                f"{o['remote']['median_latency_ms']:.2f} ms remote), one API switched by config"
            )
        elif s.name == "tampered":
            out.append(
                f"the tampered device was refused ({', '.join(f['measurement_reasons'])}), "
                "no certificate"
            )
        elif s.name == "revocation":
            out.append(
                f"the revoked device was refused on its open connection "
                f"{f['agent_learned_ms']:.0f} ms after the revocation (budget "
                f"{REVOCATION_BUDGET_S:g} s); {len(f['others_served'])} others still served"
            )
    return out


def files_of(workdir: Path) -> Iterator[tuple[str, str]]:
    """(what, path) of what a kept demo directory holds, and a command to look at each."""
    registry = workdir / "verifier" / "registry.db"
    yield "factory workspace", str(workdir / "factory")
    yield "devices", f"{workdir / 'devices'}  (edgetrust device show DIR)"
    yield "endorsements", str(workdir / "endorsements.json")
    yield "verifier", str(workdir / "verifier")
    yield "registry", f"{registry}  (edgetrust registry list --db {registry})"
    yield "agent", f"{workdir / 'agent'}  (agent.toml, agent.crt, agent.key)"
    yield "service log", str(workdir / SERVICE_LOG)


def remove_tree(path: Path, *, keep_root: bool) -> None:
    """Delete what the demo wrote under ``path`` (and ``path`` itself unless ``keep_root``)."""
    if not keep_root:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                child.unlink()


def step_lines(report: DemoReport) -> Sequence[str]:
    """One line per step: outcome, time, name."""
    lines = []
    for s in report.steps:
        mark = {True: "ok", False: "FAILED", None: "not run"}[s.ok]
        lines.append(f"{mark:<8}{s.seconds:6.2f} s  {s.name}")
    return lines
