from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ChallengeRequest(_message.Message):
    __slots__ = ("device_hint",)
    DEVICE_HINT_FIELD_NUMBER: _ClassVar[int]
    device_hint: str
    def __init__(self, device_hint: _Optional[str] = ...) -> None: ...

class ChallengeResponse(_message.Message):
    __slots__ = ("nonce", "expires_at_unix_ms", "session_id")
    NONCE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    nonce: bytes
    expires_at_unix_ms: int
    session_id: str
    def __init__(self, nonce: _Optional[bytes] = ..., expires_at_unix_ms: _Optional[int] = ..., session_id: _Optional[str] = ...) -> None: ...

class AttestRequest(_message.Message):
    __slots__ = ("session_id", "chain_der", "evidence", "media_type", "csr_der")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CSR_DER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    evidence: bytes
    media_type: str
    csr_der: bytes
    def __init__(self, session_id: _Optional[str] = ..., chain_der: _Optional[_Iterable[bytes]] = ..., evidence: _Optional[bytes] = ..., media_type: _Optional[str] = ..., csr_der: _Optional[bytes] = ...) -> None: ...

class AttestResponse(_message.Message):
    __slots__ = ("ear", "tier", "reasons", "certificate_der", "certificate_chain_der", "not_after_unix_ms")
    EAR_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_DER_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_DER_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ear: bytes
    tier: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    certificate_der: bytes
    certificate_chain_der: _containers.RepeatedScalarFieldContainer[bytes]
    not_after_unix_ms: int
    def __init__(self, ear: _Optional[bytes] = ..., tier: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ..., certificate_der: _Optional[bytes] = ..., certificate_chain_der: _Optional[_Iterable[bytes]] = ..., not_after_unix_ms: _Optional[int] = ...) -> None: ...
