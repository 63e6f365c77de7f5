"""Who is refused: no certificate, another CA, an expired certificate (all at the handshake), a
revoked device, a device without permission; revocation reaching open connections and streams."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from edgetrust._proto.edgetrust.v1 import inference_pb2
from edgetrust.errors import PermissionDeniedError, RevokedError, UnavailableError
from edgetrust.offload.agent import Agent
from edgetrust.offload.client import Classifier
from edgetrust.offload.models import digit_samples
from tests.integration.offload.conftest import MODEL, Creds, Pki, Revoker, wait_for

Stub = Callable[..., Any]


def request() -> Any:
    return inference_pb2.ClassifyRequest(
        model=MODEL, image=digit_samples()[0].path.read_bytes(), top_k=1
    )


def code_of(stub: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        stub.Classify(request(), timeout=5)
    return info.value.code()  # type: ignore[attr-defined, no-any-return]


# -- the handshake ----------------------------------------------------------------------------


def test_client_without_certificate_fails_the_handshake(stub_for: Stub, pki: Pki) -> None:
    assert code_of(stub_for(None, ca=pki.ca_path)) is grpc.StatusCode.UNAVAILABLE


def test_certificate_from_another_ca_fails_the_handshake(
    stub_for: Stub, foreign_creds: Creds
) -> None:
    assert code_of(stub_for(foreign_creds)) is grpc.StatusCode.UNAVAILABLE


def test_expired_certificate_fails_the_handshake(stub_for: Stub, expired_creds: Creds) -> None:
    assert code_of(stub_for(expired_creds)) is grpc.StatusCode.UNAVAILABLE


def test_handshake_failure_is_unavailable_for_the_client_api(
    agent: Agent, expired_creds: Creds
) -> None:
    with (
        Classifier(
            MODEL, "remote", agent=agent.address, cert=expired_creds.cert, key=expired_creds.key,
            ca=expired_creds.ca, fallback=False, retries=0, environ={},
        ) as classifier,
        pytest.raises(UnavailableError),
    ):  # fmt: skip
        classifier.classify(digit_samples()[0].path)


# -- authorisation ----------------------------------------------------------------------------


def test_device_without_permission_for_the_model_is_permission_denied(
    stub_for: Stub, pki: Pki, agent: Agent
) -> None:
    _, creds = pki.device(ueid="0000dead")  # permissions: this device may use no model
    with pytest.raises(grpc.RpcError) as info:
        stub_for(creds).Classify(request(), timeout=5)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "may not use model" in info.value.details()  # type: ignore[attr-defined]
    with (
        Classifier(MODEL, "remote", agent=agent.address, cert=creds.cert, key=creds.key,
                   ca=creds.ca, environ={}) as classifier,
        pytest.raises(PermissionDeniedError),
    ):  # fmt: skip
        classifier.classify(digit_samples()[0].path)


def test_revoked_device_is_permission_denied(
    stub_for: Stub, pki: Pki, agent: Agent, revoker: Revoker
) -> None:
    ueid, creds = pki.device()
    seq = revoker.device(ueid, reason="reported stolen")
    wait_for(lambda: agent.revocations.last_seq >= seq)
    with pytest.raises(grpc.RpcError) as info:
        stub_for(creds).Classify(request(), timeout=5)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "reported stolen" in info.value.details()  # type: ignore[attr-defined]
    # and a revocation is never hidden by the local fallback
    with (
        Classifier(MODEL, "auto", agent=agent.address, cert=creds.cert, key=creds.key,
                   ca=creds.ca, fallback=True, environ={}) as classifier,
        pytest.raises(RevokedError),
    ):  # fmt: skip
        classifier.classify(digit_samples()[0].path)


def test_revocation_reaches_an_already_open_connection(
    stub_for: Stub, pki: Pki, revoker: Revoker
) -> None:
    ueid, creds = pki.device()
    stub = stub_for(creds)
    assert stub.Classify(request(), timeout=5).top  # connection established and working
    revoker.device(ueid)
    revoked_at = time.monotonic()

    def refused() -> bool:
        try:
            stub.Classify(request(), timeout=5)
        except grpc.RpcError as e:
            return e.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined, no-any-return]
        return False

    wait_for(refused, timeout=5)
    assert time.monotonic() - revoked_at < 1.5


def _open_stream(stub: Any) -> tuple[queue.Queue[Any], Iterator[Any]]:
    outbox: queue.Queue[Any] = queue.Queue()

    def requests() -> Iterator[Any]:
        while True:
            item = outbox.get()
            if item is None:
                return
            yield item

    return outbox, stub.ClassifyStream(requests(), timeout=20)


def test_revocation_ends_an_idle_open_stream(stub_for: Stub, pki: Pki, revoker: Revoker) -> None:
    ueid, creds = pki.device()
    outbox, responses = _open_stream(stub_for(creds))
    outbox.put(request())
    assert next(responses).top
    revoker.device(ueid, reason="cut the stream")
    revoked_at = time.monotonic()
    # nothing more is sent: the agent must end the stream on its own
    with pytest.raises(grpc.RpcError) as info:
        next(responses)
    elapsed = time.monotonic() - revoked_at
    outbox.put(None)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert "cut the stream" in info.value.details()  # type: ignore[attr-defined]
    assert elapsed < 1.5


def drain(responses: Iterator[Any], since: float) -> None:
    for _ in responses:
        assert time.monotonic() - since < 5


def test_revocation_ends_a_busy_stream_between_messages(
    stub_for: Stub, pki: Pki, revoker: Revoker
) -> None:
    ueid, creds = pki.device()
    outbox, responses = _open_stream(stub_for(creds))
    stop = threading.Event()

    def keep_sending() -> None:
        while not stop.is_set():
            outbox.put(request())
            time.sleep(0.01)

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    try:
        assert next(responses).top
        revoker.device(ueid)
        revoked_at = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:
            drain(responses, revoked_at)
        elapsed = time.monotonic() - revoked_at
    finally:
        stop.set()
        sender.join(2)
        outbox.put(None)
    assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED  # type: ignore[attr-defined]
    assert elapsed < 1.5


def test_other_devices_keep_working_after_a_revocation(
    stub_for: Stub, pki: Pki, agent: Agent, revoker: Revoker
) -> None:
    revoked, _ = pki.device()
    _, fine = pki.device()
    seq = revoker.device(revoked)
    wait_for(lambda: agent.revocations.last_seq >= seq)
    assert stub_for(fine).Classify(request(), timeout=5).top
