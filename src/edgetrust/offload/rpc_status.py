"""The gRPC statuses of ``edgetrust.v1.Inference`` and our errors, both ways.

The agent answers each of our errors with a status and names the reason in the trailing metadata
key ``edgetrust-error`` (:func:`status_for`); the client translates a failed call back into our
error tree with that tag (:func:`error_from_rpc`). One table per direction, kept side by side so
that a new reason is added to both.
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from edgetrust.errors import (
    DeadlineExceededError,
    Error,
    EvidenceError,
    ExpiredError,
    InferenceError,
    InvalidRequestError,
    NotFoundError,
    OverloadedError,
    OversizeError,
    PermissionDeniedError,
    RevokedError,
    StreamLimitError,
    UnavailableError,
)

ERROR_METADATA_KEY = "edgetrust-error"


def status_for(error: Error) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and the ``edgetrust-error`` reason tag for one of our errors."""
    table: Sequence[tuple[type[Error], grpc.StatusCode, str]] = (
        (NotFoundError, grpc.StatusCode.NOT_FOUND, "not-found"),
        (OversizeError, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversize"),
        (RevokedError, grpc.StatusCode.PERMISSION_DENIED, "revoked"),
        (ExpiredError, grpc.StatusCode.UNAUTHENTICATED, "expired"),
        (PermissionDeniedError, grpc.StatusCode.PERMISSION_DENIED, "forbidden"),
        (EvidenceError, grpc.StatusCode.INVALID_ARGUMENT, "invalid"),
        (StreamLimitError, grpc.StatusCode.RESOURCE_EXHAUSTED, "stream-limit"),
        (OverloadedError, grpc.StatusCode.RESOURCE_EXHAUSTED, "overloaded"),
        (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED, "deadline"),
        (UnavailableError, grpc.StatusCode.UNAVAILABLE, "unavailable"),
    )
    for kind, code, tag in table:
        if isinstance(error, kind):
            return code, tag
    return grpc.StatusCode.INTERNAL, "internal"


def error_from_rpc(error: grpc.RpcError, *, agent: str) -> Error:
    """Translate a failed call into our error tree (using the agent's ``edgetrust-error`` tag)."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or code.name
    tag = ""
    if isinstance(error, grpc.Call):
        for key, value in error.trailing_metadata() or ():
            if key == ERROR_METADATA_KEY:
                tag = str(value)
    message = f"agent {agent}: {details}"
    if code is grpc.StatusCode.NOT_FOUND:
        return NotFoundError(message)
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidRequestError(message)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        if tag == "stream-limit":
            return StreamLimitError(message)
        if tag == "overloaded":
            return OverloadedError(message)
        return OversizeError(message)
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return RevokedError(message) if tag == "revoked" else PermissionDeniedError(message)
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return ExpiredError(message) if tag == "expired" else PermissionDeniedError(message)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceededError(message)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return UnavailableError(message)
    return InferenceError(message)


__all__ = ["ERROR_METADATA_KEY", "error_from_rpc", "status_for"]
