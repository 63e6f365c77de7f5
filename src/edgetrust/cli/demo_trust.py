"""The trust half of ``edgetrust demo``: factory, verifier, onboarding, and a tampered device.

Each step runs what the production commands run: ``edgetrust factory init / provision /
export-endorsements`` (:class:`~edgetrust.onboarding.factory.FactoryWorkspace`,
:func:`~edgetrust.onboarding.factory_batch.provision_batch`), ``edgetrust verifier init / endorse /
serve`` (:func:`~edgetrust.onboarding.workspace.init_workspace`, the SQLite registry, an in-process
:class:`~edgetrust.onboarding.verifier.VerifierServer` on 127.0.0.1) and ``edgetrust device
onboard`` (:class:`~edgetrust.onboarding.device.SimulatedDevice` over TLS).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from edgetrust.attest.ear import AttestationResult
from edgetrust.attest.reference import EndorsementBundle, ReferenceValues
from edgetrust.certs.builders import spiffe_id
from edgetrust.certs.loading import read_certificates
from edgetrust.cli.demo_state import (
    TRUST_DOMAIN,
    WAIT_S,
    DemoDevice,
    DemoState,
    StepLog,
    file_mode,
    need,
    short_hex,
)
from edgetrust.cli.evidence_ear import EarKey, read_ear
from edgetrust.onboarding.config import load_config
from edgetrust.onboarding.device import SimulatedDevice
from edgetrust.onboarding.factory import FactoryWorkspace
from edgetrust.onboarding.factory_batch import provision_batch
from edgetrust.onboarding.factory_output import read_journal
from edgetrust.onboarding.records import Endorsement
from edgetrust.onboarding.store import SqlRegistryStore
from edgetrust.onboarding.verifier import build_verifier_server
from edgetrust.onboarding.verifier_processes import verifier_settings
from edgetrust.onboarding.workspace import init_workspace, load_keys, write_config

__all__ = [
    "TAMPERED_LAYER",
    "factory_step",
    "onboarding_step",
    "tampered_step",
    "verifier_step",
]

#: The DICE layer whose image the tampered device has modified.
TAMPERED_LAYER: Final = "firmware"


def flip_one_bit(path: Path) -> None:
    """What an attacker patching flash would do: one bit of one byte in the middle."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def factory_step(state: DemoState, step: StepLog) -> None:
    factory = FactoryWorkspace.create(state.workdir / "factory")
    product = factory.config.product()
    root, middle = factory.root_certificate(), factory.intermediate_certificate()
    state.say(f"manufacturer root CA  {root.subject.rfc4514_string()}")
    if middle is not None:
        state.say(f"issuing CA            {middle.subject.rfc4514_string()}")
    layers = [x.name for x in product.layers]
    components = [c.name for c in product.components]
    state.say(
        f"product               {product.name} firmware {product.firmware_version}: DICE "
        f"layers {', '.join(layers)}; measured {', '.join(components)}"
    )
    out = state.workdir / "devices"
    batch = provision_batch(factory, out=out, count=state.count + 1, jobs=1)
    journal = read_journal(out, count=state.count + 1)
    provisioned = [journal[i] for i in sorted(journal)]
    rows = []
    for entry in provisioned:
        path = out / entry.name
        device_id = read_certificates(path / "device-id.pem")[0]
        issuer_ok = middle is not None and device_id.issuer == middle.subject
        device = DemoDevice(name=entry.name, path=path, ueid=entry.ueid)
        if len(state.devices) < state.count:
            state.devices.append(device)
            role = "onboards in step 3"
        else:
            state.spare = device
            role = "spare: tampered with in step 6"
        serial = format(device_id.serial_number, "x")
        uds_mode = file_mode(path / "uds.bin")
        rows.append(
            {
                "name": entry.name,
                "ueid": entry.ueid.hex(),
                "device_id_serial": serial,
                "device_id_issuer": device_id.issuer.rfc4514_string(),
                "uds_mode": uds_mode,
                "role": role,
            }
        )
        step.check(f"{entry.name}: UDS file is 0600", uds_mode == "0600")
        step.check(f"{entry.name}: DeviceID signed by the issuing CA", issuer_ok)
        state.say(
            f"{entry.name}  UEID {entry.ueid.hex()}  DeviceID serial {short_hex(serial)}  "
            f"UDS {uds_mode}  ({role})"
        )
    step.check(f"{state.count + 1} devices provisioned", len(provisioned) == state.count + 1)
    bundle = factory.endorsements()
    state.endorsements_file.write_text(bundle.to_json(), encoding="utf-8")
    versions = [
        f"{p.product} {fw.version}" for p in bundle.reference_values.products for fw in p.firmware
    ]
    state.say(
        f"endorsements          {len(bundle.anchors)} trust anchor + reference values for "
        f"{', '.join(versions)} -> {state.endorsements_file.name}"
    )
    step.check("endorsements exported", state.endorsements_file.is_file())
    step.facts |= {
        "workspace": str(factory.path),
        "root_ca": root.subject.rfc4514_string(),
        "issuing_ca": middle.subject.rfc4514_string() if middle else None,
        "product": product.name,
        "firmware_version": product.firmware_version,
        "layers": layers,
        "components": components,
        "provisioned": batch.provisioned,
        "devices": rows,
        "endorsements": str(state.endorsements_file),
        "reference_values": versions,
    }


def verifier_step(state: DemoState, step: StepLog) -> None:
    workspace = init_workspace(state.verifier_dir)
    config_file = write_config(
        workspace, listen="127.0.0.1:0", feed_listen="127.0.0.1:0", trust_domain=TRUST_DOMAIN
    )
    config = load_config(config_file, env={})  # the demo ignores EDGETRUST_* variables
    state.keys = keys = load_keys(config)
    store = SqlRegistryStore(
        config.database_url, create=True, sqlite_synchronous=config.sqlite_synchronous
    )
    state.resources.callback(store.close)
    state.store = store
    bundle = EndorsementBundle.load(state.endorsements_file)
    for product in bundle.reference_values.products:  # what `edgetrust verifier endorse` does
        store.put_endorsement(
            Endorsement(
                product=product.product,
                firmware_version="",
                document=ReferenceValues(products=(product,)).to_json(),
                trust_anchors_pem=bundle.anchors_pem,
            ),
            actor="demo",
            now=datetime.now(UTC),
        )
    endorsed = [e.product for e in store.list_endorsements()]
    state.say(f"cluster CA            {keys.cluster_ca.anchor.subject.rfc4514_string()}")
    state.say(f"EAR signing key       {workspace.ear_public_file.name} (P-256, ES256 JWTs)")
    state.say(f"registry              {config.database_url} (endorsed: {', '.join(endorsed)})")
    settings = verifier_settings(config)  # what `edgetrust verifier serve` runs
    server = build_verifier_server(keys=keys, store=store, settings=settings).start()
    state.resources.callback(server.stop, 0.5)
    state.server = server
    state.say(
        f"serving               devices on {server.address} (TLS), "
        f"revocation feed on {server.feed_address} (mTLS)"
    )
    wanted = [p.product for p in bundle.reference_values.products]
    step.check("endorsements imported", endorsed == wanted)
    step.check("verifier serving on 127.0.0.1", server.serving)
    step.facts |= {
        "directory": str(workspace.root),
        "config": str(config_file),
        "cluster_ca": keys.cluster_ca.anchor.subject.rfc4514_string(),
        "ear_public_key": str(workspace.ear_public_file),
        "registry": config.database_url,
        "endorsed": endorsed,
        "address": server.address,
        "feed_address": server.feed_address,
        "trust_domain": config.trust_domain,
        "certificate_lifetime_s": int(config.certificate_lifetime.total_seconds()),
    }


def _verified_ear(ear: bytes, key: EarKey) -> AttestationResult | None:
    """The verifier's EAR, JWT or CWT (per its ``ear_format``), verified with its public key."""
    return read_ear(ear, key)[1] if ear else None


def onboarding_step(state: DemoState, step: StepLog) -> None:
    ear_key = state.ear_key()
    rows = []
    for entry in state.devices:
        device = SimulatedDevice.open(entry.path)
        boot = device.boot()
        layers = [m.name for m in boot.measurements if m.layer is not None]
        measured = [m.name for m in boot.measurements if m.layer is None]
        started, issued_at = time.perf_counter(), datetime.now(UTC)
        with state.verifier_client() as client:
            result = device.onboard(client, boot=boot)
        elapsed_ms = (time.perf_counter() - started) * 1000
        ear = _verified_ear(result.ear, ear_key)
        cert = device.operational_certificate()
        expected_id = spiffe_id(TRUST_DOMAIN, entry.ueid)
        # Valid for the configured lifetime from its issue (not_before is backdated a
        # minute for clock skew, so not_after - not_before is a minute longer).
        lifetime = (cert.not_valid_after_utc - issued_at) if cert else timedelta(0)
        key_file = device.operational_dir / "key.pem"
        vector = ear.trust_vector.to_json() if ear else {}
        row = {
            "name": entry.name,
            "ueid": entry.ueid.hex(),
            "dice_layers": layers,
            "measured_components": measured,
            "chain_length": len(boot.chain),
            "affirmed": result.affirmed,
            "tier": ear.status.label if ear else result.tier,
            "trust_vector": vector,
            "reasons": list(result.reasons),
            "spiffe_id": result.spiffe_id,
            "serial": format(cert.serial_number, "x") if cert else None,
            "not_after": cert.not_valid_after_utc.isoformat() if cert else None,
            "lifetime_s": round(lifetime.total_seconds()),
            "certificate": str(device.operational_dir / "cert.pem") if cert else None,
            "latency_ms": round(elapsed_ms, 1),
        }
        rows.append(row)
        state.say(
            f"{entry.name}  booted {', '.join(layers)} -> chain of {len(boot.chain)} "
            f"certificates; measured {', '.join(measured)}"
        )
        trust = ", ".join(f"{k}={v}" for k, v in vector.items())
        state.say(
            f"  nonce -> Attest(chain, EAT, CSR) -> EAR {row['tier']} [{trust}] "
            f"in {elapsed_ms:.0f} ms"
        )
        if cert is not None:
            state.say(
                f"  certificate {result.spiffe_id}  until "
                f"{cert.not_valid_after_utc:%H:%M:%S} UTC "
                f"({round(lifetime.total_seconds() / 60)} min)"
            )
        else:
            state.say(f"  refused: {'; '.join(result.reasons)}")
        step.check(f"{entry.name}: EAR affirming", ear is not None and ear.affirming)
        step.check(f"{entry.name}: certificate stored", cert is not None)
        step.check(f"{entry.name}: SPIFFE ID {expected_id}", result.spiffe_id == expected_id)
        step.check(
            f"{entry.name}: valid for 1 h",
            abs(lifetime - timedelta(hours=1)) < timedelta(seconds=WAIT_S),
        )
        step.check(
            f"{entry.name}: operational key 0600",
            key_file.exists() and file_mode(key_file) == "0600",
        )
    step.facts |= {
        "devices": rows,
        "onboarded": sum(1 for r in rows if r["affirmed"]),
    }


def tampered_step(state: DemoState, step: StepLog) -> None:
    spare, store = need(state.spare, "spare device"), need(state.store, "registry")
    device = SimulatedDevice.open(spare.path)
    before = {m.name: m.digest for m in device.boot().measurements}
    image = spare.path / "firmware" / f"{TAMPERED_LAYER}.bin"
    flip_one_bit(image)
    after = {m.name: m.digest for m in device.boot().measurements}
    state.say(f"{spare.name}  UEID {spare.ueid.hex()}")
    state.say(
        f"  after provisioning, one bit of firmware/{image.name} flipped: {TAMPERED_LAYER} "
        f"now measures sha256 {short_hex(after[TAMPERED_LAYER])}, the reference value is "
        f"{short_hex(before[TAMPERED_LAYER])}"
    )
    with state.verifier_client() as client:
        result = device.onboard(client)
    ear = _verified_ear(result.ear, state.ear_key())
    tier = ear.status.label if ear else result.tier
    vector = ear.trust_vector.to_json() if ear else {}
    certificates = store.certificates_of(spare.ueid)
    verdict = "AFFIRMED (not expected)" if result.affirmed else "refused"
    trust = ", ".join(f"{k}={v}" for k, v in vector.items())
    state.say(f"  nonce -> Attest(chain, EAT, CSR) -> {verdict}: {'; '.join(result.reasons)}")
    state.say(f"  signed EAR {tier} [{trust}]; certificates issued: {len(certificates)}")
    mismatch = [r for r in result.reasons if r.startswith("measurement_mismatch")]
    step.check("onboarding refused", not result.affirmed)
    step.check(
        f"reason names a measurement mismatch of {TAMPERED_LAYER}",
        f"measurement_mismatch:{TAMPERED_LAYER}" in result.reasons,
    )
    no_certificate = result.certificate is None and device.operational_certificate() is None
    step.check("no certificate returned or stored", no_certificate and not certificates)
    step.check("signed EAR says contraindicated", tier == "contraindicated")
    step.facts |= {
        "device": spare.name,
        "ueid": spare.ueid.hex(),
        "tampered_file": str(image.relative_to(spare.path)),
        "measured_before": before[TAMPERED_LAYER].hex(),
        "measured_after": after[TAMPERED_LAYER].hex(),
        "refused": not result.affirmed,
        "reasons": list(result.reasons),
        "measurement_reasons": mismatch,
        "tier": tier,
        "trust_vector": vector,
        "certificate_issued": result.certificate is not None or bool(certificates),
    }
