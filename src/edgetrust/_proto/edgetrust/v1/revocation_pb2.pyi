from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RevocationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVOCATION_KIND_UNSPECIFIED: _ClassVar[RevocationKind]
    REVOCATION_KIND_DEVICE: _ClassVar[RevocationKind]
    REVOCATION_KIND_CERTIFICATE: _ClassVar[RevocationKind]
    REVOCATION_KIND_HEARTBEAT: _ClassVar[RevocationKind]
REVOCATION_KIND_UNSPECIFIED: RevocationKind
REVOCATION_KIND_DEVICE: RevocationKind
REVOCATION_KIND_CERTIFICATE: RevocationKind
REVOCATION_KIND_HEARTBEAT: RevocationKind

class WatchRevocationsRequest(_message.Message):
    __slots__ = ("after_seq", "heartbeat_interval_ms")
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    after_seq: int
    heartbeat_interval_ms: int
    def __init__(self, after_seq: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class RevocationEvent(_message.Message):
    __slots__ = ("seq", "kind", "ueid_hex", "serial_hex", "reason", "revoked_at_unix_ms")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UEID_HEX_FIELD_NUMBER: _ClassVar[int]
    SERIAL_HEX_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    kind: RevocationKind
    ueid_hex: str
    serial_hex: str
    reason: str
    revoked_at_unix_ms: int
    def __init__(self, seq: _Optional[int] = ..., kind: _Optional[_Union[RevocationKind, str]] = ..., ueid_hex: _Optional[str] = ..., serial_hex: _Optional[str] = ..., reason: _Optional[str] = ..., revoked_at_unix_ms: _Optional[int] = ...) -> None: ...
