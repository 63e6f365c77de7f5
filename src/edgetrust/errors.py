"""The one exception tree of edgetrust.

Errors are split by *who must act* (python-tuf, sigstore-python):

* :class:`EvidenceError` -- the device (or whoever sent the bytes) is at fault. The verifier turns
  it into a negative attestation result; gRPC maps it to INVALID_ARGUMENT / PERMISSION_DENIED;
  the CLI exits 1 (for a verdict) or 2 (for unusable input).
* :class:`ConfigError` -- the operator must fix a file, a flag or an environment variable
  (CLI exit 2).
* :class:`ServiceError` -- something on our side or in the environment failed (database, network,
  runtime); gRPC INTERNAL / UNAVAILABLE, CLI exit 3.

Every error carries a one-line message; :meth:`Error.diagnostics` adds what a person needs to fix
it. Third-party exceptions are translated where they enter the package (``raise ... from e``).
"""

from __future__ import annotations


class Error(Exception):
    """Root of every exception raised on purpose by edgetrust."""

    #: A short hint shown after the message by :meth:`diagnostics`.
    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message

    def diagnostics(self) -> str:
        """What a person reads: the message, the kind of problem, and a hint when there is one."""
        text = f"{type(self).__name__}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


# --------------------------------------------------------------------------------------------
# Evidence: the sender's fault.
# --------------------------------------------------------------------------------------------


class EvidenceError(Error):
    """The evidence (certificates, tokens, requests) is malformed, untrusted or does not match."""


class MalformedError(EvidenceError):
    """Bytes that do not decode as the structure they claim to be."""


class CBORError(MalformedError):
    """CBOR that violates the strict decoding rules (trailing bytes, duplicate keys, ...)."""


class ASN1Error(MalformedError):
    """DER/ASN.1 that does not decode, or decodes to the wrong structure."""


class OversizeError(MalformedError):
    """An input larger than the configured bound."""


class CertificateError(EvidenceError):
    """An X.509 certificate or chain is not acceptable."""


class UntrustedAnchorError(CertificateError):
    """The chain does not lead to any configured trust anchor."""


class SignatureError(EvidenceError):
    """A signature or MAC does not verify with the key it must verify with."""


class ValidityError(CertificateError):
    """A certificate is outside its validity period at the time of checking."""


class ExpiredError(ValidityError):
    """A certificate (or token) has expired."""


class NotYetValidError(ValidityError):
    """A certificate (or token) is not valid yet."""


class BasicConstraintsError(CertificateError):
    """basicConstraints, pathLen or keyUsage forbid this certificate's place in the chain."""


class NameChainingError(CertificateError):
    """An issuer name does not match the subject name of the certificate above it."""


class UnknownCriticalExtensionError(CertificateError):
    """A certificate carries a critical extension that we do not understand."""


class DiceExtensionError(CertificateError):
    """A DICE extension (TcbInfo, MultiTcbInfo, Ueid, Open DICE) is malformed."""


class AlgorithmError(EvidenceError):
    """An unknown algorithm, a missing algorithm, or an algorithm that does not match the key."""


class ClaimError(EvidenceError):
    """A token claim is missing, has the wrong type, or has a value the profile forbids."""


class NonceError(EvidenceError):
    """A nonce is missing, unknown, expired, already used, or does not match."""


class UnknownNonceError(NonceError):
    """The nonce was never issued by this verifier (or was purged after it expired)."""


class NonceExpiredError(NonceError):
    """The nonce's time to live has passed."""


class NonceReplayError(NonceError):
    """The nonce has already been used once."""


class NonceSessionError(NonceError):
    """The nonce was issued to another session."""


class FreshnessError(EvidenceError):
    """A token is too old, expired, or issued in the future."""


class AppraisalError(EvidenceError):
    """Evidence verified but does not satisfy the reference values or the policy."""


class RevokedError(EvidenceError):
    """The device or certificate has been revoked."""


class KeyBindingError(EvidenceError):
    """A CSR's key is not the key the evidence binds (the EAT's ``cnf``), or no key is bound."""


class UnsupportedSchemeError(EvidenceError):
    """No evidence scheme is registered for the media type or token shape."""


class InvalidRequestError(EvidenceError):
    """A request to one of our services is malformed: unknown model, wrong shape, bad field."""


class NotFoundError(InvalidRequestError):
    """The registry has no such device, certificate or endorsement."""


class DeviceConflictError(EvidenceError):
    """A device presents an identity that conflicts with its registry record (another DeviceID)."""


class PermissionDeniedError(EvidenceError):
    """The caller is authenticated but not allowed to do this."""


# --------------------------------------------------------------------------------------------
# Config: the operator's fault.
# --------------------------------------------------------------------------------------------


class ConfigError(Error):
    """A configuration file, flag, key file or environment variable is missing or invalid."""


class KeyFileError(ConfigError):
    """A key or certificate file cannot be read or is not of a supported form."""


class WorkspaceError(ConfigError):
    """A factory, verifier or device directory is missing, incomplete or inconsistent."""


class DiceInputError(ConfigError):
    """Open DICE derivation inputs (CDIs, UDS, measurements, mode) of a wrong size, type, value."""


# --------------------------------------------------------------------------------------------
# Service: our side, or the environment.
# --------------------------------------------------------------------------------------------


class ServiceError(Error):
    """An internal or environmental failure: storage, network, runtime."""


class StoreError(ServiceError):
    """The registry store failed (connection, constraint, migration)."""


class DuplicateRecordError(StoreError):
    """A record with the same key already exists (certificate serial, nonce)."""


class AuditAnchorError(StoreError):
    """The audit log no longer holds a head recorded earlier: truncated or rewritten since."""


class UnavailableError(ServiceError):
    """A remote service could not be reached or did not answer in time."""


class InferenceError(ServiceError):
    """The inference runtime failed to load or run a model."""


class OverloadedError(ServiceError):
    """A bounded queue is full: back-pressure; the caller should retry later (RESOURCE_EXHAUSTED)"""


class StreamLimitError(OverloadedError):
    """The agent has as many streams open as it allows (``agent.max_streams``): call unary."""


class DeadlineExceededError(UnavailableError):
    """A call's deadline passed before its result was ready."""
