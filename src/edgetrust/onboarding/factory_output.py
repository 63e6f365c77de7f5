"""The output directory of a provisioning batch: what it is, what is done, who writes it.

::

    OUT/                    0700
      batch.json            the plan (:class:`BatchPlan`): product, release digests, count, mode,
                            manufacturer root; a run asking for anything else is refused
      journal.jsonl         one line per device that is done (:class:`ProvisionedDevice`)
      device-000001/ ...    the devices (:func:`device_name`)
      .partial/             devices being written (discarded when a run starts)
      .lock                 held (flock) by the one run allowed at a time (:class:`OutputLock`)

A device is **done** once its journal line is on disk; its directory was made durable before the
line was written (see :mod:`edgetrust.onboarding.factory_batch`). :func:`recover` prepares an
interrupted batch for the next run: it keeps the journaled devices, removes ``.partial/`` and
every device directory the journal does not list, and reports how long the valid journal is (a
torn last line is cut off when the journal is reopened).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import json
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from edgetrust.errors import WorkspaceError

__all__ = [
    "BATCH_FILE",
    "JOURNAL_FILE",
    "LOCK_FILE",
    "PARTIAL_DIR",
    "BatchJournal",
    "BatchPlan",
    "OutputLock",
    "ProvisionedDevice",
    "check_plan",
    "device_name",
    "flush_filesystem",
    "read_journal",
    "recover",
]

BATCH_FORMAT: Final = "edgetrust-factory-batch"
BATCH_FORMAT_VERSION: Final = 1
BATCH_FILE: Final = "batch.json"
JOURNAL_FILE: Final = "journal.jsonl"
LOCK_FILE: Final = ".lock"
PARTIAL_DIR: Final = ".partial"
DEVICE_PREFIX: Final = "device-"


def device_name(index: int, count: int) -> str:
    """The directory name of device ``index`` (1-based) of a batch of ``count``."""
    return f"{DEVICE_PREFIX}{index:0{max(6, len(str(count)))}d}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchPlan:
    """What a batch makes (``batch.json``): a re-run must ask for exactly the same."""

    factory_root: str
    product: str
    firmware_version: str
    count: int
    mode: str
    key_alg: str
    #: (image name, SHA-256 hex) of every layer and component, layers first.
    images: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BATCH_FORMAT,
            "version": BATCH_FORMAT_VERSION,
            "factory_root_sha256": self.factory_root,
            "product": self.product,
            "firmware_version": self.firmware_version,
            "count": self.count,
            "mode": self.mode,
            "key_alg": self.key_alg,
            "images": [{"name": n, "sha256": d} for n, d in self.images],
        }

    @classmethod
    def from_dict(cls, data: object) -> BatchPlan:
        try:
            return _plan_from(data)
        except (KeyError, TypeError, ValueError) as e:
            raise WorkspaceError(f"{BATCH_FILE} is invalid: {e}") from e

    def differences(self, other: BatchPlan) -> list[str]:
        """The names of the fields in which ``other`` differs from this plan."""
        names = ("factory_root", "product", "firmware_version", "count", "mode", "key_alg")
        diff = [n for n in names if getattr(self, n) != getattr(other, n)]
        if self.images != other.images:
            diff.append("images")
        return diff


def _plan_from(data: object) -> BatchPlan:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    if data.get("format") != BATCH_FORMAT or data.get("version") != BATCH_FORMAT_VERSION:
        raise ValueError(f"format must be {BATCH_FORMAT!r} version {BATCH_FORMAT_VERSION}")
    return BatchPlan(
        factory_root=str(data["factory_root_sha256"]),
        product=str(data["product"]),
        firmware_version=str(data["firmware_version"]),
        count=int(data["count"]),
        mode=str(data["mode"]),
        key_alg=str(data["key_alg"]),
        images=tuple((str(i["name"]), str(i["sha256"])) for i in data["images"]),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvisionedDevice:
    """One done device, as the journal records it (no secret)."""

    index: int
    name: str
    ueid: bytes
    serial: int

    def to_line(self) -> str:
        return (
            json.dumps(
                {
                    "n": self.index,
                    "dir": self.name,
                    "ueid": self.ueid.hex(),
                    "serial": f"{self.serial:x}",
                },
                separators=(",", ":"),
            )
            + "\n"
        )

    @classmethod
    def from_dict(cls, data: object) -> ProvisionedDevice:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        index = data["n"]
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError("n must be an integer")
        return cls(
            index=index,
            name=str(data["dir"]),
            ueid=bytes.fromhex(str(data["ueid"])),
            serial=int(str(data["serial"]), 16),
        )


# ------------------------------------------------------------------------------------------------
# The journal
# ------------------------------------------------------------------------------------------------


def read_journal(
    out: str | os.PathLike[str], *, count: int | None = None
) -> dict[int, ProvisionedDevice]:
    """The done devices of the batch in ``out`` by index; a torn last line is ignored.

    A bad line elsewhere, an index out of range, or a repeated index or UEID is a
    :class:`WorkspaceError` (the journal was damaged or edited).
    """
    devices, _ = journal_prefix(Path(out) / JOURNAL_FILE, count)
    return devices


def journal_prefix(path: Path, count: int | None) -> tuple[dict[int, ProvisionedDevice], int]:
    """(devices, length in bytes of the valid prefix).

    A crash while appending leaves a torn tail: text after the last newline, or damaged lines
    at the very end. That tail is not part of the journal (those devices are not done). A damaged
    line followed by a good one is not a crash: that is an error.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}, 0
    except OSError as e:
        raise WorkspaceError(f"{path}: cannot read the journal: {e}") from e
    devices: dict[int, ProvisionedDevice] = {}
    ueids: set[bytes] = set()
    offset = 0
    damaged: tuple[int, Exception] | None = None
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        try:
            device = ProvisionedDevice.from_dict(json.loads(line))
        except (KeyError, TypeError, ValueError) as e:
            damaged = damaged or (number, e)
            continue
        if damaged is not None:
            raise WorkspaceError(f"{path}: line {damaged[0]} is damaged ({damaged[1]})")
        if count is not None and not 1 <= device.index <= count:
            raise WorkspaceError(f"{path}: line {number}: device {device.index} not in 1..{count}")
        if count is not None and device.name != device_name(device.index, count):
            raise WorkspaceError(f"{path}: line {number}: unexpected directory {device.name!r}")
        if device.index in devices or device.ueid in ueids:
            raise WorkspaceError(f"{path}: line {number}: device {device.index} is listed twice")
        devices[device.index] = device
        ueids.add(device.ueid)
        offset += len(line) + 1
    return devices, offset


class BatchJournal:
    """The append-only journal: one ``write`` and one ``fsync`` per checkpoint."""

    def __init__(self, path: Path, valid_length: int) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            if os.fstat(self.fd).st_size != valid_length:
                os.ftruncate(self.fd, valid_length)  # drop a torn tail
                os.fsync(self.fd)
            self.length = os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as e:
            raise WorkspaceError(f"{path}: cannot open the journal: {e}") from e

    def append(self, devices: Sequence[ProvisionedDevice]) -> None:
        """Append the lines of ``devices`` and fsync. On failure the journal is cut back to
        what it was (no torn line stays in front of later appends) and the error raised."""
        data = "".join(d.to_line() for d in devices).encode()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
            os.fsync(self.fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.length)
                os.lseek(self.fd, self.length, os.SEEK_SET)
            raise WorkspaceError(f"{self.path}: cannot append to the journal: {e}") from e
        self.length += len(data)

    def close(self) -> None:
        os.close(self.fd)


# ------------------------------------------------------------------------------------------------
# Starting a run
# ------------------------------------------------------------------------------------------------


def check_plan(out: Path, plan: BatchPlan) -> None:
    path = out / BATCH_FILE
    if path.exists():
        try:
            recorded = BatchPlan.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise WorkspaceError(f"{path}: cannot read: {e}") from e
        differences = recorded.differences(plan)
        if differences:
            raise WorkspaceError(
                f"{out} holds a batch with another {', '.join(differences)}; re-run with the "
                "same parameters to complete it, or choose another --out",
            )
        return
    strangers = sorted(p.name for p in out.iterdir() if p.name != LOCK_FILE)
    if strangers:
        raise WorkspaceError(f"{out} is not empty and holds no batch ({strangers[0]}, ...)")
    tmp = out / f".{BATCH_FILE}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(plan.to_dict(), indent=2) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(out)
    except OSError as e:
        raise WorkspaceError(f"{path}: cannot write: {e}") from e


def recover(out: Path, count: int) -> tuple[dict[int, ProvisionedDevice], int, int]:
    """(done devices, devices discarded, valid journal length) after an earlier run."""
    done, valid_length = journal_prefix(out / JOURNAL_FILE, count)
    present = set(os.listdir(out))
    for device in done.values():
        if device.name not in present:
            raise WorkspaceError(
                f"{out}: the journal lists {device.name} but its directory is missing; "
                "the batch was changed outside the factory",
            )
    done_names = {d.name for d in done.values()}
    discarded = 0
    try:
        for entry in sorted(present):
            if entry.startswith(DEVICE_PREFIX) and entry not in done_names:
                shutil.rmtree(out / entry)  # renamed but not durable when the last run stopped
                discarded += 1
        partial = out / PARTIAL_DIR
        if partial.exists():
            discarded += len(os.listdir(partial))
            shutil.rmtree(partial)
        os.mkdir(partial, 0o700)
    except OSError as e:
        raise WorkspaceError(f"{out}: cannot clean up an interrupted run: {e}") from e
    return done, discarded, valid_length


class OutputLock:
    """Hold ``OUT/.lock`` (flock): one run per output directory at a time."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK_FILE
        self.fd = -1

    def __enter__(self) -> int:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise WorkspaceError(f"{self.path}: cannot open: {e}") from e
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise WorkspaceError(
                f"another provisioning run is writing to {self.path.parent}"
            ) from None
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush_filesystem(path: Path) -> None:
    """Make everything written to the file system holding ``path`` durable: ``syncfs(2)`` on
    Linux (one flush of that file system only), ``sync()`` elsewhere."""
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise WorkspaceError(f"{path}: cannot open to flush: {e.strerror or e}") from e
    try:
        if syncfs(fd) != 0:
            error = ctypes.get_errno()
            raise WorkspaceError(f"{path}: syncfs failed: {os.strerror(error)}")
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function
