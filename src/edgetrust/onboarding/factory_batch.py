"""Batch provisioning: N devices from a factory workspace, in parallel, resumable.

Per device (:class:`_DeviceMaker`): a fresh 32-byte UDS from :func:`secrets.token_bytes`; the
device side derives its DeviceID key from it (:meth:`DeviceIdentity.from_uds`) and signs a CSR;
the factory checks the CSR's signature and signs the DeviceID certificate with the manufacturer
intermediate (UEID extension, serial = the Open DICE UDS_ID); the device directory is written
in the layout of :mod:`edgetrust.onboarding.device` -- ``uds.bin`` (0600), ``device.json``,
``device-id.pem`` (DeviceID certificate, then the intermediate), ``firmware/<layer>.bin``,
``components/<name>.bin`` -- into ``OUT/.partial/`` and renamed into place in one step. The
factory keeps **no copy of any UDS**: it lives only in the device's directory (and in the
worker's memory while it is being written).

The output directory (``batch.json``, ``journal.jsonl``, ``device-NNNNNN/``, ``.partial/``,
``.lock``) is described in :mod:`edgetrust.onboarding.factory_output`.

Resumption. A device is **done** once its journal line is on disk, and its line is written only
after its directory is durable. Writing then fsyncing every file of every device would cost
about ten fsyncs per device, so durability is batched: about once a second (and at the end, and
when interrupted) the run calls ``syncfs()`` on the output file system -- one flush covering
every directory written since the last checkpoint -- then appends their journal lines in one
``write`` and fsyncs the journal once. The trade-off: a crash loses at most the last second of
work, which the next run redoes; it never loses or duplicates a done device. When a run starts
it removes ``.partial/`` and every device directory the journal does not list (written, but not
yet durable when the previous run stopped), truncates a torn last journal line, and provisions
exactly the missing indexes.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import multiprocessing
import os
import secrets
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives import serialization

from edgetrust.attest.dice import KeyAlg
from edgetrust.attest.identity import DeviceIdentity
from edgetrust.attest.reference import DigestAlgorithm
from edgetrust.certs.builders import Issuer, build_device_id_certificate
from edgetrust.certs.ca import CertificateAuthority
from edgetrust.errors import ConfigError, ServiceError, WorkspaceError
from edgetrust.onboarding.device import (
    COMPONENTS_DIR,
    DEVICE_ID_FILE,
    FIRMWARE_DIR,
    MANIFEST,
    UDS_FILE,
    UDS_SIZE,
    ComponentFile,
    DeviceManifest,
    LayerFile,
)
from edgetrust.onboarding.factory import FactoryWorkspace, FirmwareImages
from edgetrust.onboarding.factory_output import (
    JOURNAL_FILE,
    PARTIAL_DIR,
    BatchJournal,
    BatchPlan,
    OutputLock,
    ProvisionedDevice,
    check_plan,
    device_name,
    flush_filesystem,
    recover,
)

__all__ = ["BatchReport", "ProgressCallback", "provision_batch"]

#: Devices per task handed to a worker process.
CHUNK: Final = 32
#: Below this many missing devices the batch runs in this process whatever ``jobs`` says.
POOL_THRESHOLD: Final = 2 * CHUNK
MODES: Final = ("normal", "debug", "not_configured", "recovery")
#: Certificates issued now are valid from a little earlier (clock skew between machines).
BACKDATE: Final = timedelta(minutes=5)


# ------------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchReport:
    """What a provisioning run did."""

    out: Path
    product: str
    firmware_version: str
    count: int
    #: Devices provisioned by this run / found done from earlier runs.
    provisioned: int
    already_done: int
    #: Half-written or not-yet-durable devices of an earlier run that were discarded.
    discarded: int
    release_recorded: bool
    elapsed: float
    jobs: int

    @property
    def rate(self) -> float:
        """Devices per second of this run."""
        return self.provisioned / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "product": self.product,
            "firmware_version": self.firmware_version,
            "count": self.count,
            "provisioned": self.provisioned,
            "already_done": self.already_done,
            "discarded": self.discarded,
            "release_recorded": self.release_recorded,
            "elapsed_s": round(self.elapsed, 3),
            "devices_per_s": round(self.rate, 1),
            "jobs": self.jobs,
        }


class ProgressCallback(Protocol):
    """Told how many of the batch's devices are made (including earlier runs') so far."""

    def __call__(self, done: int, total: int) -> None: ...


# ------------------------------------------------------------------------------------------------
# One device
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _WorkerSpec:
    """Everything a worker process needs (picklable; the CA is read from its directory)."""

    ca_dir: str
    out: str
    count: int
    key_alg: KeyAlg
    #: device.json with a placeholder UEID.
    manifest: Mapping[str, Any]
    #: (path relative to the device directory, bytes) of every image.
    files: tuple[tuple[str, bytes], ...] = field(repr=False)
    #: PEM of the certificates above the DeviceID certificate (the intermediate).
    chain_pem: bytes
    not_before: datetime
    not_after: datetime


class _DeviceMaker:
    """Makes devices (in a worker process, or in the caller's for one job)."""

    def __init__(self, spec: _WorkerSpec) -> None:
        self.spec = spec
        self.issuer: Issuer = CertificateAuthority.load(spec.ca_dir).issuer
        self.out = spec.out
        self.partial = os.path.join(spec.out, PARTIAL_DIR)
        self.subdirs = sorted({p.split("/", 1)[0] for p, _ in spec.files if "/" in p})
        # device.json is the same for every device but its UEID: serialise it once.
        text = json.dumps({**spec.manifest, "ueid": _UEID_SLOT}, indent=2) + "\n"
        head, tail = text.split(_UEID_SLOT)
        self.manifest_head, self.manifest_tail = head.encode(), tail.encode()

    def make(self, index: int) -> ProvisionedDevice:
        spec = self.spec
        name = device_name(index, spec.count)
        # -- the device: its secret, its DeviceID key, its CSR
        uds = secrets.token_bytes(UDS_SIZE)
        identity = DeviceIdentity.from_uds(uds, key_alg=spec.key_alg)
        csr = identity.device_id_csr()
        ueid = identity.ueid
        serial = identity.device_id
        # -- the factory: check the CSR (proof of possession) and sign the DeviceID certificate
        certificate = build_device_id_certificate(
            csr=csr,
            issuer=self.issuer,
            ueid=ueid,
            not_before=spec.not_before,
            not_after=spec.not_after,
            serial=serial,
        )
        # -- the device directory, written aside then renamed into place
        tmp = f"{self.partial}/{name}"
        try:
            os.mkdir(tmp, 0o700)
            for sub in self.subdirs:
                os.mkdir(f"{tmp}/{sub}", 0o755)
            _write_new(f"{tmp}/{UDS_FILE}", uds, 0o600)
            pem = certificate.public_bytes(serialization.Encoding.PEM) + spec.chain_pem
            _write_new(f"{tmp}/{DEVICE_ID_FILE}", pem, 0o644)
            for relative, data in spec.files:
                _write_new(f"{tmp}/{relative}", data, 0o644)
            manifest = self.manifest_head + ueid.hex().encode() + self.manifest_tail
            _write_new(f"{tmp}/{MANIFEST}", manifest, 0o644)
            os.rename(tmp, f"{self.out}/{name}")
        except OSError as e:
            raise WorkspaceError(f"{self.out}/{name}: cannot write the device: {e}") from e
        return ProvisionedDevice(
            index=index, name=name, ueid=ueid, serial=int.from_bytes(serial, "big")
        )


_UEID_SLOT: Final = "@@UEID@@"


def _write_new(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        if mode & 0o077 == 0:
            os.fchmod(fd, mode)  # exactly owner-only, whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


# Worker processes: one maker each, built by the pool's initializer.
_maker: _DeviceMaker | None = None


def _init_worker(spec: _WorkerSpec, inherited: tuple[int, ...]) -> None:
    global _maker  # noqa: PLW0603 - per-process state of a pool worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt does
    for fd in inherited:  # a forked worker must not keep the run's lock (or journal) open
        with contextlib.suppress(OSError):
            os.close(fd)
    _maker = _DeviceMaker(spec)


def _make_chunk(indexes: Sequence[int]) -> list[ProvisionedDevice]:
    if _maker is None:  # pragma: no cover - the initializer always runs first
        raise ServiceError("provisioning worker not initialised")
    return [_maker.make(i) for i in indexes]


# ------------------------------------------------------------------------------------------------
# The batch
# ------------------------------------------------------------------------------------------------


def provision_batch(
    workspace: FactoryWorkspace,
    *,
    out: str | os.PathLike[str],
    count: int,
    product: str | None = None,
    firmware: Mapping[str, str | os.PathLike[str]] | None = None,
    components: Mapping[str, str | os.PathLike[str]] | None = None,
    firmware_version: str | None = None,
    mode: str = "normal",
    jobs: int = 1,
    progress: ProgressCallback | None = None,
    checkpoint_seconds: float = 1.0,
    now: datetime | None = None,
) -> BatchReport:
    """Provision devices 1..``count`` into ``out``, or the missing ones of an earlier run.

    ``firmware`` / ``components`` map a layer / component name to an image file replacing the
    product's default; the images are recorded as a release of ``firmware_version`` (default:
    the product's). ``jobs`` worker processes make the devices. On an exception or
    ``KeyboardInterrupt`` the devices already made are checkpointed (journaled) before it
    propagates, so a re-run continues where this one stopped.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise ConfigError(f"count must be a positive integer, not {count!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs <= 0:
        raise ConfigError(f"jobs must be a positive integer, not {jobs!r}")
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    started = time.monotonic()
    images = workspace.firmware_images(
        product, layers=firmware, components=components, firmware_version=firmware_version
    )
    ca = workspace.certificate_authority()
    plan = _plan(workspace, images, count=count, mode=mode, root_der=_der(ca))
    workspace.check_release(images.release)  # a conflict is refused before OUT is touched
    target = Path(out)
    try:
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(f"{target}: cannot create the output directory: {e}") from e
    with OutputLock(target) as lock_fd:
        check_plan(target, plan)
        recorded = workspace.record_release(images.release)
        done, discarded, valid_length = recover(target, count)
        missing = [i for i in range(1, count + 1) if i not in done]
        spec = _spec(workspace=workspace, images=images, ca=ca, plan=plan, out=target, now=now)
        journal = BatchJournal(target / JOURNAL_FILE, valid_length)
        try:
            run = _Run(journal, len(done), count, progress, checkpoint_seconds)
            if progress is not None:
                progress(len(done), count)
            if missing:
                workers = min(jobs, max(1, len(missing) // CHUNK))
                if workers == 1 or len(missing) < POOL_THRESHOLD:
                    run.inline(spec, missing)
                else:
                    run.pooled(spec, missing, workers, (lock_fd, journal.fd))
        finally:
            journal.close()
    return BatchReport(
        out=target,
        product=plan.product,
        firmware_version=plan.firmware_version,
        count=count,
        provisioned=run.durable - len(done),
        already_done=len(done),
        discarded=discarded,
        release_recorded=recorded,
        elapsed=time.monotonic() - started,
        jobs=jobs,
    )


class _Run:
    """The parent's side of one run: collects made devices and checkpoints them."""

    def __init__(
        self,
        journal: BatchJournal,
        durable: int,
        count: int,
        progress: ProgressCallback | None,
        checkpoint_seconds: float,
    ) -> None:
        self.journal = journal
        self.durable = durable
        self.made = durable
        self.count = count
        self.progress = progress
        self.interval = checkpoint_seconds
        self.pending: list[ProvisionedDevice] = []
        self.last = time.monotonic()

    def collect(self, devices: Sequence[ProvisionedDevice]) -> None:
        self.pending.extend(devices)
        self.made += len(devices)
        if self.progress is not None:
            self.progress(self.made, self.count)
        if time.monotonic() - self.last >= self.interval:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Make every device collected so far durable, then journal them (see module doc)."""
        self.last = time.monotonic()
        if not self.pending:
            return
        flush_filesystem(self.journal.path.parent)
        self.journal.append(self.pending)
        self.durable += len(self.pending)
        self.pending = []

    def _harvest(self, finished: set[Future[list[ProvisionedDevice]]]) -> None:
        """Collect every finished chunk that succeeded, then raise the first failure."""
        failures = [e for e in (f.exception() for f in finished) if e is not None]
        for future in finished:
            if future.exception() is None:
                self.collect(future.result())
        if failures:
            raise failures[0]

    def inline(self, spec: _WorkerSpec, missing: Sequence[int]) -> None:
        maker = _DeviceMaker(spec)
        try:
            for chunk in _chunks(missing):
                self.collect([maker.make(i) for i in chunk])
        finally:
            self.checkpoint()

    def pooled(
        self, spec: _WorkerSpec, missing: Sequence[int], workers: int, inherited: tuple[int, ...]
    ) -> None:
        chunks = _chunks(missing)
        in_flight: set[Future[list[ProvisionedDevice]]] = set()
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=_mp_context(),
            initializer=_init_worker,
            initargs=(spec, inherited),
        ) as pool:
            try:
                for chunk in itertools.islice(chunks, 4 * workers):
                    in_flight.add(pool.submit(_make_chunk, chunk))
                while in_flight:
                    finished, in_flight = wait(
                        in_flight, timeout=self.interval, return_when=FIRST_COMPLETED
                    )
                    self._harvest(finished)
                    for chunk in itertools.islice(chunks, len(finished)):
                        in_flight.add(pool.submit(_make_chunk, chunk))
                    if time.monotonic() - self.last >= self.interval:
                        self.checkpoint()
            except BaseException as e:
                for future in in_flight:
                    future.cancel()
                wait(in_flight)  # chunks already running finish; keep what they made
                for future in in_flight:
                    if not future.cancelled() and future.exception() is None:
                        self.pending.extend(future.result())
                self.checkpoint()
                if isinstance(e, BrokenProcessPool):
                    raise ServiceError(f"a provisioning worker died: {e}") from e
                raise
            self.checkpoint()


def _chunks(indexes: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(indexes), CHUNK):
        yield list(indexes[start : start + CHUNK])


def _mp_context() -> Any:
    # fork: the workers start in milliseconds (spawn re-imports everything: ~0.5 s each).
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


# ---- preparation ------------------------------------------------------------------------------


def _der(ca: CertificateAuthority) -> bytes:
    return ca.root_certificate.public_bytes(serialization.Encoding.DER)


def _plan(
    workspace: FactoryWorkspace, images: FirmwareImages, *, count: int, mode: str, root_der: bytes
) -> BatchPlan:
    release = images.release
    return BatchPlan(
        factory_root=hashlib.sha256(root_der).hexdigest(),
        product=images.product.name,
        firmware_version=images.firmware_version,
        count=count,
        mode=mode,
        key_alg=workspace.config.device_key_alg.value,
        images=tuple(
            (i.name, i.digests[DigestAlgorithm.SHA256].hex())
            for i in release.layers + release.components
        ),
    )


def _spec(
    *,
    workspace: FactoryWorkspace,
    images: FirmwareImages,
    ca: CertificateAuthority,
    plan: BatchPlan,
    out: Path,
    now: datetime | None,
) -> _WorkerSpec:
    product = images.product
    layers = tuple(
        LayerFile(name=d.name, file=f"{FIRMWARE_DIR}/{d.name}.bin", version=d.version, svn=d.svn)
        for d, _ in images.layers
    )
    parts = tuple(
        ComponentFile(name=c.name, file=f"{COMPONENTS_DIR}/{c.name}.bin", version=c.version)
        for c, _ in images.components
    )
    template = DeviceManifest(
        ueid=b"\x01",  # replaced per device
        product=product.name,
        firmware_version=images.firmware_version,
        layers=layers,
        components=parts,
        oemid=workspace.config.oemid,
        key_alg=plan.key_alg,
        mode=plan.mode,
        secure_boot=product.secure_boot,
    )
    files = tuple((x.file, data) for x, (_, data) in zip(layers, images.layers, strict=True))
    files += tuple((c.file, data) for c, (_, data) in zip(parts, images.components, strict=True))
    issuer = ca.issuer
    start = (now or datetime.now(UTC)) - BACKDATE
    return _WorkerSpec(
        ca_dir=str(workspace.ca_dir),
        out=str(out),
        count=plan.count,
        key_alg=workspace.config.device_key_alg,
        manifest=template.to_dict(),
        files=files,
        chain_pem=b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in ca.chain[:-1]
        ),  # the intermediate; the root is the verifier's anchor
        not_before=start,
        not_after=issuer.certificate.not_valid_after_utc,
    )
