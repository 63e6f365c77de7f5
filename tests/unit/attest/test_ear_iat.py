"""An EAR issued in the future is refused (both serializations): ``iat`` may be at most
``clock_skew`` (default 60 s) after the verifying ``now``; without ``now`` no time is checked."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from edgetrust.attest.ear import (
    DEFAULT_CLOCK_SKEW,
    AttestationResult,
    sign_ear,
    sign_ear_cwt,
    verify_ear,
    verify_ear_cwt,
)
from edgetrust.errors import ClaimError, ExpiredError
from tests.unit.attest.ear_samples import NOW, sample_result

KEY = ec.generate_private_key(ec.SECP256R1())
RESULT = sample_result(expires_at=NOW + dt.timedelta(hours=1))
SECOND = dt.timedelta(seconds=1)
Verify = Callable[..., AttestationResult]


def _jwt(now: dt.datetime | None, **options: dt.timedelta) -> AttestationResult:
    return verify_ear(sign_ear(RESULT, KEY), KEY.public_key(), now=now, **options)


def _cwt(now: dt.datetime | None, **options: dt.timedelta) -> AttestationResult:
    return verify_ear_cwt(sign_ear_cwt(RESULT, KEY), KEY.public_key(), now=now, **options)


FORMS = pytest.mark.parametrize("verify", [_jwt, _cwt], ids=["jwt", "cwt"])


def test_the_default_allowance_is_60_seconds() -> None:
    assert dt.timedelta(seconds=60) == DEFAULT_CLOCK_SKEW


@FORMS
def test_iat_just_inside_the_allowance_is_accepted(verify: Verify) -> None:
    assert verify(NOW - DEFAULT_CLOCK_SKEW) == RESULT
    assert verify(NOW) == RESULT


@FORMS
def test_iat_just_outside_the_allowance_is_refused(verify: Verify) -> None:
    with pytest.raises(ClaimError) as caught:
        verify(NOW - DEFAULT_CLOCK_SKEW - SECOND)
    assert caught.value.message == (
        "EAR issued in the future: iat 2025-06-01T12:00:00+00:00 is more than 60 s after "
        "now 2025-06-01T11:58:59+00:00"
    )


@FORMS
def test_the_allowance_is_a_keyword(verify: Verify) -> None:
    assert verify(NOW - dt.timedelta(minutes=5), clock_skew=dt.timedelta(minutes=5)) == RESULT
    assert verify(NOW, clock_skew=dt.timedelta(0)) == RESULT
    with pytest.raises(ClaimError, match=r"^EAR issued in the future: .* more than 0 s after"):
        verify(NOW - SECOND, clock_skew=dt.timedelta(0))
    with pytest.raises(ClaimError, match=r"more than 1.5 s after now"):
        verify(NOW - 2 * SECOND, clock_skew=dt.timedelta(seconds=1.5))


@FORMS
def test_without_now_iat_is_not_checked(verify: Verify) -> None:
    assert verify(None) == RESULT


@FORMS
def test_expiry_is_still_checked(verify: Verify) -> None:
    with pytest.raises(ExpiredError, match=r"^EAR expired at 2025-06-01T13:00:00"):
        verify(NOW + dt.timedelta(hours=1))
