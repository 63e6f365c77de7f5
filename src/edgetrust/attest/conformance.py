"""Appraisal steps 6-8: verified evidence against the endorsed reference values. Pure.

The part of :func:`edgetrust.attest.appraisal.appraise` that compares what a device reports with
what its manufacturer endorsed (:mod:`edgetrust.attest.reference`, whose product values live in
:mod:`edgetrust.attest.products`). It does no I/O and never reads the clock. Every step reports
what it finds to a :class:`Findings` (the appraisal's collector) instead of raising: bad evidence
is a negative result.

Steps (described in full, with their reason codes, in :mod:`edgetrust.attest.appraisal`):

6. reference values: :func:`select_reference` (product, firmware version), :func:`check_layers`
   (token measurements and TcbInfo FWIDs per reference layer);
7. SVN minimums: :func:`check_svn`;
8. debug, secure boot and DICE modes: :func:`check_state`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from edgetrust.attest import eat
from edgetrust.attest.ear import Category, Claim
from edgetrust.attest.products import (
    DebugPolicy,
    DigestAlgorithm,
    DigestVerdict,
    FirmwareReference,
    LayerReference,
    ProductReference,
    SecureBootPolicy,
)
from edgetrust.attest.reference import ReferenceValues
from edgetrust.certs.chain import ValidatedChain
from edgetrust.certs.dice_ext import OperationalFlag, TcbInfo
from edgetrust.errors import AppraisalError, EvidenceError

__all__ = [
    "Findings",
    "check_layers",
    "check_state",
    "check_svn",
    "select_reference",
    "tcb_infos",
]

#: EAT measurement digest names (IANA Named Information) -> reference digest algorithms.
_MEASUREMENT_ALGS: Mapping[str, DigestAlgorithm] = {
    "sha-256": DigestAlgorithm.SHA256,
    "sha-384": DigestAlgorithm.SHA384,
    "sha-512": DigestAlgorithm.SHA512,
}


class Findings(Protocol):
    """Where a step reports what it found (the appraisal's collector)."""

    def add(
        self, reason: str, category: Category, value: int, error: type[EvidenceError], text: str
    ) -> None: ...


# ---- 6. reference values ----------------------------------------------------------------------


def select_reference(
    run: Findings, claims: eat.EatClaims, reference_values: ReferenceValues
) -> tuple[ProductReference | None, FirmwareReference | None]:
    """The product and firmware version the evidence claims, if the reference endorses them."""
    if claims.hwmodel is None or claims.swversion is None:
        return None, None  # already a claim_missing finding
    product = reference_values.product_for(claims.hwmodel)
    if product is None:
        run.add(
            "unknown_product",
            Category.HARDWARE,
            Claim.UNRECOGNIZED_HARDWARE,
            AppraisalError,
            f"no reference values for hwmodel {claims.hwmodel.hex()}",
        )
        return None, None
    if product.oemid is not None and claims.oemid != product.oemid:
        run.add(
            "oemid_mismatch",
            Category.HARDWARE,
            Claim.UNRECOGNIZED_HARDWARE,
            AppraisalError,
            f"oemid does not match the manufacturer of {product.product}",
        )
    firmware = product.firmware_version(claims.swversion.version)
    if firmware is None:
        run.add(
            "unknown_firmware_version",
            Category.EXECUTABLES,
            Claim.CONTRAINDICATED_RUNTIME,
            AppraisalError,
            f"{product.product} firmware {claims.swversion.version!r} is not endorsed",
        )
    return product, firmware


def tcb_infos(chain: ValidatedChain) -> list[TcbInfo]:
    """Every TcbInfo of the chain's certificates, leaf first."""
    return [tcb for entry in chain.entries for tcb in entry.tcb_info]


def _measurement_digests(m: eat.Measurement) -> dict[DigestAlgorithm, bytes]:
    alg = _MEASUREMENT_ALGS.get(m.digest_alg)
    return {} if alg is None else {alg: m.digest}


def _fwid_digests(tcb: TcbInfo) -> dict[DigestAlgorithm, bytes]:
    out: dict[DigestAlgorithm, bytes] = {}
    for fwid in tcb.fwids or ():
        name = fwid.hash_name
        if name is not None and name in DigestAlgorithm._value2member_map_:
            out[DigestAlgorithm(name)] = fwid.digest
    return out


def _compare(
    run: Findings,
    layer: LayerReference,
    reported: Mapping[DigestAlgorithm, bytes],
    mismatch: str,
    what: str,
) -> None:
    verdict = layer.compare(reported)
    if verdict is DigestVerdict.MATCH:
        return
    reason = mismatch if verdict is DigestVerdict.MISMATCH else "measurement_unverifiable"
    run.add(
        f"{reason}:{layer.name}",
        Category.EXECUTABLES,
        Claim.CONTRAINDICATED_RUNTIME,
        AppraisalError,
        f"{what} of {layer.name} does not match the reference ({verdict.value})",
    )


def check_layers(
    run: Findings, claims: eat.EatClaims, tcbs: Sequence[TcbInfo], firmware: FirmwareReference
) -> None:
    """Token measurements and TcbInfo FWIDs against the firmware's reference layers."""
    ex = Category.EXECUTABLES
    measured = {m.name: m for m in claims.device_measurements}
    for layer in firmware.layers:
        m = measured.get(layer.name)
        if m is None:
            run.add(
                f"measurement_missing:{layer.name}",
                ex,
                Claim.CONTRAINDICATED_RUNTIME,
                AppraisalError,
                f"the token does not measure {layer.name}",
            )
        else:
            _compare(run, layer, _measurement_digests(m), "measurement_mismatch", "measurement")
        if not layer.dice:
            continue
        matching = [t for t in tcbs if t.model == layer.name]
        if len(matching) != 1:
            reason = "tcb_missing" if not matching else "tcb_ambiguous"
            run.add(
                f"{reason}:{layer.name}",
                ex,
                Claim.CONTRAINDICATED_RUNTIME,
                AppraisalError,
                f"{len(matching)} TcbInfo entries have model {layer.name!r}; expected one",
            )
            continue
        _compare(run, layer, _fwid_digests(matching[0]), "fwid_mismatch", "TcbInfo FWID")
    known = {layer.name for layer in firmware.layers}
    for name in sorted(set(measured) - known):
        run.add(
            f"measurement_unrecognized:{name}",
            ex,
            Claim.UNRECOGNIZED_RUNTIME,
            AppraisalError,
            f"the reference values do not know measurement {name!r}",
        )
    for tcb in tcbs:
        if tcb.model not in known:
            run.add(
                f"tcb_unrecognized:{tcb.model}",
                ex,
                Claim.UNRECOGNIZED_RUNTIME,
                AppraisalError,
                f"the reference values do not know TcbInfo model {tcb.model!r}",
            )


# ---- 7. SVN -----------------------------------------------------------------------------------


def check_svn(
    run: Findings,
    claims: eat.EatClaims,
    tcbs: Sequence[TcbInfo],
    product: ProductReference,
    firmware: FirmwareReference,
) -> None:
    """Every layer with a minimum reports an SVN, and the lowest one reported meets it."""
    measured = {m.name: m for m in claims.device_measurements}
    names = {layer.name for layer in firmware.layers} | set(product.svn_min)
    for name in sorted(names):
        minimum = product.minimum_svn(name)
        if minimum is None:
            continue
        reported = [t.svn for t in tcbs if t.model == name and t.svn is not None]
        if name in measured and measured[name].svn is not None:
            reported.append(measured[name].svn)  # type: ignore[arg-type]
        if not reported:
            run.add(
                f"svn_missing:{name}",
                Category.EXECUTABLES,
                Claim.CONTRAINDICATED_RUNTIME,
                AppraisalError,
                f"no SVN reported for {name} (minimum {minimum})",
            )
        elif min(reported) < minimum:
            run.add(
                f"svn_below_minimum:{name}",
                Category.EXECUTABLES,
                Claim.CONTRAINDICATED_RUNTIME,
                AppraisalError,
                f"{name} SVN {min(reported)} is below the minimum {minimum}",
            )


# ---- 8. debug, secure boot, modes -------------------------------------------------------------


def _flag(tcb: TcbInfo, flag: OperationalFlag) -> bool:
    if tcb.flags is None or flag not in tcb.flags:
        return False
    return tcb.flags_mask is None or flag in tcb.flags_mask


def check_state(
    run: Findings,
    claims: eat.EatClaims,
    tcbs: Sequence[TcbInfo],
    firmware: FirmwareReference | None,
) -> None:
    """Debug and secure boot per the firmware's policy; no layer not configured or in recovery."""
    cfg, bad = Category.CONFIGURATION, Claim.UNSUPPORTABLE_CONFIG
    # Without an endorsed firmware entry, apply the strict defaults.
    debug = firmware.debug if firmware is not None else DebugPolicy.FORBIDDEN
    secure_boot = firmware.secure_boot if firmware is not None else SecureBootPolicy.REQUIRED
    if debug is DebugPolicy.FORBIDDEN and (
        claims.dbgstat is eat.DebugStatus.ENABLED
        or any(_flag(t, OperationalFlag.DEBUG) for t in tcbs)
    ):
        run.add("debug_enabled", cfg, bad, AppraisalError, "debug is enabled; policy forbids it")
    if secure_boot is SecureBootPolicy.REQUIRED and (
        claims.oemboot is False or any(_flag(t, OperationalFlag.NOT_SECURE) for t in tcbs)
    ):
        run.add(
            "secure_boot_disabled", cfg, bad, AppraisalError, "secure boot is off; policy requires"
        )
    for tcb in tcbs:
        if _flag(tcb, OperationalFlag.NOT_CONFIGURED):
            run.add(
                f"tcb_not_configured:{tcb.model}", cfg, bad, AppraisalError, "layer not configured"
            )
        if _flag(tcb, OperationalFlag.RECOVERY):
            run.add(f"tcb_recovery:{tcb.model}", cfg, bad, AppraisalError, "layer in recovery")
