"""What the steps of ``edgetrust demo`` share: the run's state, a step's log, the step result.

The steps (:mod:`edgetrust.cli.demo_trust`, :mod:`edgetrust.cli.demo_offload`) are functions
``(state, step) -> None``: they read what earlier steps left in :class:`DemoState`, add what
later steps need, record *checks* (what had to be true, and whether it was) and *facts* (what a
newcomer or a test wants to see) in their :class:`StepLog`, and tell the :class:`Narrator` what
happens as it happens. Everything a step starts (servers, clients, the registry) is registered
on ``state.resources`` and stopped when the story ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.certs.loading import load_public_key
from edgetrust.errors import KeyFileError, ServiceError
from edgetrust.offload.agent import Agent
from edgetrust.offload.client import Classifier
from edgetrust.offload.models import Sample
from edgetrust.onboarding.device import VerifierClient
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier import VerifierServer
from edgetrust.onboarding.workspace import VerifierKeys

__all__ = [
    "TRUST_DOMAIN",
    "WAIT_S",
    "Check",
    "DemoDevice",
    "DemoState",
    "Narrator",
    "StepLog",
    "StepResult",
    "file_mode",
    "need",
    "short_hex",
    "wait_until",
]

T = TypeVar("T")

#: The SPIFFE trust domain of the demo cluster.
TRUST_DOMAIN: Final = "edgetrust.local"
#: Upper bound of every wait and call timeout (feed synchronisation, revocation arrival, one call).
WAIT_S: Final = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One expectation of a step and whether it held."""

    what: str
    ok: bool

    def to_json(self) -> dict[str, Any]:
        return {"what": self.what, "ok": self.ok}


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """What one step did. ``ok`` is None for a step that did not run."""

    name: str
    title: str
    ok: bool | None
    seconds: float
    checks: tuple[Check, ...] = ()
    facts: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def problem(self) -> str | None:
        """Why the step failed (its error, else its first failed check)."""
        if self.error:
            return self.error
        failed = [c.what for c in self.checks if not c.ok]
        if failed:
            return f"expected: {failed[0]}"
        return None if self.ok is not False else "the step checked nothing"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "title": self.title,
            "error": self.error,
            "checks": [c.to_json() for c in self.checks],
            **self.facts,
        }


class Narrator(Protocol):
    """Told what happens, as it happens (the CLI prints it; JSON mode stays silent)."""

    def step(self, number: int, total: int, title: str, why: str) -> None: ...

    def say(self, text: str) -> None: ...

    def result(self, step: StepResult) -> None: ...


class StepLog:
    """The checks and facts of the step being run."""

    def __init__(self) -> None:
        self.checks: list[Check] = []
        self.facts: dict[str, Any] = {}

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append(Check(what=what, ok=bool(ok)))
        return bool(ok)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoDevice:
    """A provisioned device the story follows."""

    name: str
    path: Path
    ueid: bytes


@dataclass(slots=True, kw_only=True)
class DemoState:
    """What the steps have made so far (filled in as the story goes)."""

    workdir: Path
    count: int
    narrator: Narrator
    resources: contextlib.ExitStack[bool | None] = field(default_factory=contextlib.ExitStack)
    devices: list[DemoDevice] = field(default_factory=list)
    spare: DemoDevice | None = None
    keys: VerifierKeys | None = None
    store: SqlRegistryStore | None = None
    server: VerifierServer | None = None
    agent: Agent | None = None
    #: The open remote client of every onboarded device (by UEID).
    remote: dict[bytes, Classifier] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    @property
    def endorsements_file(self) -> Path:
        return self.workdir / "endorsements.json"

    @property
    def verifier_dir(self) -> Path:
        return self.workdir / "verifier"

    @property
    def cluster_ca_file(self) -> Path:
        return self.verifier_dir / "cluster-ca" / "root-cert.pem"

    def say(self, text: str) -> None:
        self.narrator.say(text)

    def verifier_client(self) -> VerifierClient:
        """A device's TLS client of the verifier (trusting only the cluster CA)."""
        server, keys = need(self.server, "verifier"), need(self.keys, "verifier keys")
        return VerifierClient(server.address, root_ca_pem=keys.cluster_ca_pem, timeout=WAIT_S)

    def ear_key(self) -> ec.EllipticCurvePublicKey:
        """The verifier's EAR public key (what a relying party checks results with)."""
        key = load_public_key((self.verifier_dir / "ear-public.pem").read_bytes())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise KeyFileError("the verifier's EAR key is not an EC key")
        return key

    def client_environment(self, device: DemoDevice | None, model: str) -> dict[str, str]:
        """The configuration of the one client API: local, or the agent with the device's cert."""
        if device is None:
            return {"EDGETRUST_BACKEND": "local", "EDGETRUST_MODEL": model}
        agent = need(self.agent, "agent")
        operational = device.path / "operational"
        return {
            "EDGETRUST_BACKEND": "remote",
            "EDGETRUST_MODEL": model,
            "EDGETRUST_AGENT": agent.address,
            "EDGETRUST_CERT": str(operational / "cert.pem"),
            "EDGETRUST_KEY": str(operational / "key.pem"),
            "EDGETRUST_CA": str(self.cluster_ca_file),
            "EDGETRUST_TIMEOUT": "5",
            "EDGETRUST_RETRIES": "0",
            "EDGETRUST_FALLBACK": "0",  # show a refusal or an outage, never hide it locally
        }

    def classifier(self, environ: Mapping[str, str]) -> Classifier:
        """The application's code path: nothing but configuration differs between backends."""
        classifier = Classifier(environ=environ)
        self.resources.callback(classifier.close)
        if classifier.remote is not None:
            classifier.remote.wait_ready(WAIT_S)
        return classifier


def need(value: T | None, what: str) -> T:
    """A piece an earlier step made (the story stops before a step whose inputs are missing)."""
    if value is None:
        raise ServiceError(f"demo: the {what} from an earlier step is missing")
    return value


def file_mode(path: Path) -> str:
    """``0600`` and the like."""
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def short_hex(data: bytes | str, n: int = 16) -> str:
    text = data.hex() if isinstance(data, bytes) else data
    return text if len(text) <= n else f"{text[:n]}..."


def wait_until(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Poll ``predicate`` every 5 ms; the seconds it took, or None after ``timeout``."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started >= timeout:
            return None
        time.sleep(0.005)
