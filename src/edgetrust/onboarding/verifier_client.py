"""The verifier seen from a device: a TLS gRPC client of ``edgetrust.v1.Verifier``.

:class:`VerifierClient` trusts only the cluster CA given to it. A refusal (PERMISSION_DENIED) is
not an error but an :class:`OnboardingResult` with the verifier's reasons and the signed EAR from
the trailing metadata; a malformed request (INVALID_ARGUMENT, RESOURCE_EXHAUSTED) raises
:class:`~edgetrust.errors.InvalidRequestError`; anything else
:class:`~edgetrust.errors.UnavailableError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography import x509

from edgetrust._proto.edgetrust.v1 import verifier_pb2, verifier_pb2_grpc
from edgetrust.errors import Error, InvalidRequestError, MalformedError, UnavailableError

#: Trailing-metadata key of the signed EAR on a refusal (binary: the ``-bin`` suffix). Defined
#: here, on the device side of the wire, so that devices need not import the verifier service.
EAR_METADATA_KEY = "edgetrust-ear-bin"

__all__ = ["EAR_METADATA_KEY", "ChallengeGrant", "OnboardingResult", "VerifierClient"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ChallengeGrant:
    """A nonce and session handed out by the verifier's Challenge."""

    nonce: bytes
    session_id: str
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class OnboardingResult:
    """The verifier's answer to one attestation: a certificate, or a refusal with its reasons."""

    affirmed: bool
    tier: str
    reasons: tuple[str, ...]
    #: The signed EAR (a JWT), also on refusals when the verifier sent one.
    ear: bytes
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def not_after(self) -> datetime | None:
        return None if self.certificate is None else self.certificate.not_valid_after_utc

    @property
    def spiffe_id(self) -> str | None:
        if self.certificate is None:
            return None
        try:
            san = self.certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except x509.ExtensionNotFound:
            return None
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        return uris[0] if uris else None


class VerifierClient:
    """A TLS gRPC client of ``edgetrust.v1.Verifier`` that trusts only the cluster CA."""

    def __init__(
        self,
        target: str,
        *,
        root_ca_pem: bytes,
        timeout: float = 10.0,
        server_name: str | None = None,
    ) -> None:
        options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 1024 * 1024)]
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        self._channel = grpc.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates=root_ca_pem), options=options
        )
        self._stub = verifier_pb2_grpc.VerifierStub(self._channel)
        self._timeout = timeout
        self.target = target

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> VerifierClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def challenge(self, device_hint: str = "") -> ChallengeGrant:
        try:
            response = self._stub.Challenge(
                verifier_pb2.ChallengeRequest(device_hint=device_hint), timeout=self._timeout
            )
        except grpc.RpcError as e:
            raise _client_error(e) from e
        return ChallengeGrant(
            nonce=bytes(response.nonce),
            session_id=str(response.session_id),
            expires_at=datetime.fromtimestamp(response.expires_at_unix_ms / 1000, UTC),
        )

    def attest(
        self,
        *,
        session_id: str,
        chain_der: Sequence[bytes],
        evidence: bytes,
        media_type: str,
        csr_der: bytes,
    ) -> OnboardingResult:
        """One Attest call; a refusal (PERMISSION_DENIED) is a result, other failures raise."""
        request = verifier_pb2.AttestRequest(
            session_id=session_id,
            chain_der=list(chain_der),
            evidence=evidence,
            media_type=media_type,
            csr_der=csr_der,
        )
        try:
            response = self._stub.Attest(request, timeout=self._timeout)
        except grpc.RpcError as e:
            if e.code() is grpc.StatusCode.PERMISSION_DENIED:
                return _refusal(e)
            raise _client_error(e) from e
        try:
            certificate = x509.load_der_x509_certificate(bytes(response.certificate_der))
            chain = tuple(
                x509.load_der_x509_certificate(bytes(c)) for c in response.certificate_chain_der
            )
        except ValueError as e:
            raise MalformedError("the verifier returned an undecodable certificate") from e
        return OnboardingResult(
            affirmed=True,
            tier=str(response.tier),
            reasons=tuple(response.reasons),
            ear=bytes(response.ear),
            certificate=certificate,
            chain=chain,
        )


def _refusal(error: grpc.RpcError) -> OnboardingResult:
    ear = b""
    metadata: Sequence[Any] = error.trailing_metadata() or ()
    for item in metadata:
        if item.key == EAR_METADATA_KEY:
            ear = item.value if isinstance(item.value, bytes) else str(item.value).encode()
    details = error.details() or ""
    text = details.removeprefix("refused: ")
    reasons = tuple(r for r in text.split("; ") if r) if text != details else (details,)
    return OnboardingResult(affirmed=False, tier="contraindicated", reasons=reasons, ear=ear)


def _client_error(error: grpc.RpcError) -> Error:
    code, details = error.code(), error.details() or ""
    message = f"verifier answered {code.name}: {details}"
    if code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return InvalidRequestError(message)
    return UnavailableError(message)
