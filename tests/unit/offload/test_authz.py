"""authz: SPIFFE identity from the peer certificate, permissions, revocation set, call guards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from edgetrust.errors import (
    ConfigError,
    ExpiredError,
    PermissionDeniedError,
    RevokedError,
    UnavailableError,
)
from edgetrust.offload.authz import (
    Authorizer,
    CallTracker,
    ModelPermissions,
    PeerIdentity,
    RevocationSet,
    identity_from_auth_context,
    identity_from_certificate,
)
from edgetrust.offload.feed import RevocationEvent, RevocationKind
from tests.unit.offload.pki import (
    TRUST_DOMAIN,
    Issued,
    issue_device,
    issue_without_san,
    make_ca,
    spiffe_id,
)

UEID = "0a0b0c0d"
OTHER = "1122334455"


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def device(ca: Issued) -> Issued:
    return issue_device(ca, UEID, serial=0x1234ABCD)


def identity(ueid: str = UEID, serial: str = "1234abcd", hours: float = 1) -> PeerIdentity:
    return PeerIdentity(
        spiffe_id=spiffe_id(ueid),
        trust_domain=TRUST_DOMAIN,
        ueid_hex=ueid,
        serial_hex=serial,
        not_after=datetime.now(UTC) + timedelta(hours=hours),
    )


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- identity -------------------------------------------------------------------------------------


def test_identity_from_operational_certificate(device: Issued) -> None:
    ident = identity_from_certificate(device.cert, trust_domain=TRUST_DOMAIN)
    assert ident.spiffe_id == spiffe_id(UEID)
    assert ident.ueid_hex == UEID
    assert ident.serial_hex == "1234abcd"
    assert ident.not_after == device.cert.not_valid_after_utc


def test_identity_from_auth_context(device: Issued) -> None:
    ctx = {"x509_pem_cert": [device.cert_pem], "transport_security_type": [b"ssl"]}
    assert identity_from_auth_context(ctx, trust_domain=TRUST_DOMAIN).ueid_hex == UEID


def test_no_client_certificate_in_auth_context_is_refused() -> None:
    with pytest.raises(PermissionDeniedError, match="no client certificate"):
        identity_from_auth_context({}, trust_domain=TRUST_DOMAIN)


def test_unparsable_peer_certificate_is_refused() -> None:
    with pytest.raises(PermissionDeniedError, match="does not parse"):
        identity_from_auth_context({"x509_pem_cert": [b"garbage"]}, trust_domain=TRUST_DOMAIN)


def test_certificate_without_san_is_refused(ca: Issued) -> None:
    with pytest.raises(PermissionDeniedError, match="no subjectAltName"):
        identity_from_certificate(issue_without_san(ca).cert, trust_domain=TRUST_DOMAIN)


def test_certificate_with_two_uri_sans_is_refused(ca: Issued) -> None:
    cert = issue_device(ca, UEID, uris=[spiffe_id(UEID), spiffe_id(OTHER)]).cert
    with pytest.raises(PermissionDeniedError, match="exactly one URI SAN"):
        identity_from_certificate(cert, trust_domain=TRUST_DOMAIN)


def test_foreign_trust_domain_is_refused(ca: Issued) -> None:
    cert = issue_device(ca, UEID, trust_domain="evil.example").cert
    with pytest.raises(PermissionDeniedError, match="not a device of trust domain"):
        identity_from_certificate(cert, trust_domain=TRUST_DOMAIN)


@pytest.mark.parametrize(
    "uri",
    [
        f"spiffe://{TRUST_DOMAIN}/workload/{UEID}",
        f"spiffe://{TRUST_DOMAIN}/device/",
        f"spiffe://{TRUST_DOMAIN}/device/0A0B",
        f"spiffe://{TRUST_DOMAIN}/device/abc",
        f"spiffe://{TRUST_DOMAIN}/device/0a0b/extra",
        f"https://{TRUST_DOMAIN}/device/{UEID}",
    ],
)
def test_malformed_spiffe_ids_are_refused(ca: Issued, uri: str) -> None:
    cert = issue_device(ca, UEID, uris=[uri]).cert
    with pytest.raises(PermissionDeniedError):
        identity_from_certificate(cert, trust_domain=TRUST_DOMAIN)


# -- permissions ----------------------------------------------------------------------------------


def test_permissions_default_and_per_device_replacement() -> None:
    perms = ModelPermissions.from_mapping(default=["digits"], devices={OTHER.upper(): ["big"]})
    assert perms.permits(UEID, "digits")
    assert not perms.permits(UEID, "big")
    assert perms.permits(OTHER, "big")
    assert not perms.permits(OTHER, "digits")  # the device entry replaces the default


def test_star_permits_every_model() -> None:
    assert ModelPermissions().permits(UEID, "anything")


def test_permissions_with_a_non_hex_device_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="not a UEID"):
        ModelPermissions.from_mapping(default=["*"], devices={"device-1": ["digits"]})


# -- revocation set -------------------------------------------------------------------------------


def device_revoked(seq: int, ueid: str = UEID) -> RevocationEvent:
    return RevocationEvent(seq=seq, kind=RevocationKind.DEVICE, ueid_hex=ueid, reason="stolen")


def test_device_revocation_is_applied() -> None:
    revs = RevocationSet(require_feed=False)
    assert revs.revoked_reason(identity()) is None
    revs.apply(device_revoked(1))
    assert revs.revoked_reason(identity()) == f"device {UEID} revoked: stolen"
    assert revs.revoked_reason(identity(OTHER)) is None
    assert revs.last_seq == 1


def test_certificate_revocation_names_only_that_certificate() -> None:
    revs = RevocationSet(require_feed=False)
    revs.apply(RevocationEvent(seq=3, kind=RevocationKind.CERTIFICATE, serial_hex="1234abcd"))
    assert revs.revoked_reason(identity(serial="1234abcd")) is not None
    assert revs.revoked_reason(identity(serial="1234abce")) is None


def test_replayed_events_are_ignored_and_heartbeats_do_not_move_last_seq() -> None:
    revs = RevocationSet(require_feed=False)
    seen: list[int] = []
    revs.subscribe(lambda e: seen.append(e.seq))
    revs.apply(device_revoked(5))
    revs.apply(device_revoked(5, OTHER))
    revs.apply(device_revoked(4, OTHER))
    revs.apply(RevocationEvent(seq=9, kind=RevocationKind.HEARTBEAT))
    assert seen == [5]
    assert revs.revoked_reason(identity(OTHER)) is None
    assert revs.last_seq == 5
    assert revs.head_seq == 9


def test_required_feed_refuses_until_first_heard() -> None:
    clock = Clock()
    revs = RevocationSet(require_feed=True, max_staleness_s=10, monotonic=clock)
    with pytest.raises(UnavailableError, match="not synchronised"):
        revs.check_fresh()
    revs.apply(RevocationEvent(seq=0, kind=RevocationKind.HEARTBEAT))
    revs.check_fresh()


def test_required_feed_that_went_silent_refuses_calls() -> None:
    clock = Clock()
    revs = RevocationSet(require_feed=True, max_staleness_s=10, monotonic=clock)
    revs.apply(RevocationEvent(seq=0, kind=RevocationKind.HEARTBEAT))
    clock.t += 10.5
    with pytest.raises(UnavailableError, match="silent for"):
        revs.check_fresh()
    revs.apply(RevocationEvent(seq=0, kind=RevocationKind.HEARTBEAT))
    revs.check_fresh()


def test_feed_not_required_is_always_fresh() -> None:
    RevocationSet(require_feed=False).check_fresh()


# -- authorizer -----------------------------------------------------------------------------------


def authorizer(revs: RevocationSet | None = None, **kw: object) -> Authorizer:
    return Authorizer(
        trust_domain=TRUST_DOMAIN,
        permissions=ModelPermissions.from_mapping(default=["digits"]),
        revocations=revs or RevocationSet(require_feed=False),
        **kw,  # type: ignore[arg-type]
    )


def test_authorized_call_passes() -> None:
    authorizer().authorize(identity(), "digits")


def test_model_not_permitted_is_refused() -> None:
    with pytest.raises(PermissionDeniedError, match="may not use model 'big'"):
        authorizer().authorize(identity(), "big")


def test_revoked_device_is_refused() -> None:
    revs = RevocationSet(require_feed=False)
    revs.apply(device_revoked(1))
    with pytest.raises(RevokedError, match="revoked: stolen"):
        authorizer(revs).authorize(identity(), "digits")


def test_certificate_that_expired_during_the_connection_is_refused() -> None:
    later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(ExpiredError, match="expired"):
        authorizer(clock=lambda: later).authorize(identity(hours=1), "digits")


def test_stale_feed_refuses_authorization() -> None:
    revs = RevocationSet(require_feed=True)
    with pytest.raises(UnavailableError):
        authorizer(revs).authorize(identity(), "digits")


@pytest.mark.parametrize("domain", ["", "spiffe://x", "a/b"])
def test_bad_trust_domain_is_a_config_error(domain: str) -> None:
    with pytest.raises(ConfigError):
        Authorizer(
            trust_domain=domain,
            permissions=ModelPermissions(),
            revocations=RevocationSet(require_feed=False),
        )


# -- call tracker ---------------------------------------------------------------------------------


def test_revocation_cuts_only_the_calls_of_the_revoked_device() -> None:
    revs = RevocationSet(require_feed=False)
    tracker = CallTracker(revs)
    with tracker.track(identity()) as mine, tracker.track(identity(OTHER, "99")) as theirs:
        assert tracker.active == 2
        revs.apply(device_revoked(1))
        assert mine.cut
        assert not theirs.cut
        with pytest.raises(RevokedError, match="revoked during the call"):
            mine.raise_if_cut()
        theirs.raise_if_cut()
    assert tracker.active == 0


def test_certificate_revocation_cuts_calls_with_that_serial() -> None:
    revs = RevocationSet(require_feed=False)
    tracker = CallTracker(revs)
    with tracker.track(identity(serial="abc")) as guard:
        revs.apply(RevocationEvent(seq=1, kind=RevocationKind.CERTIFICATE, serial_hex="abc"))
        assert guard.cut


def test_call_tracked_after_its_revocation_starts_cut() -> None:
    revs = RevocationSet(require_feed=False)
    revs.apply(device_revoked(1))
    with CallTracker(revs).track(identity()) as guard:
        assert guard.cut
