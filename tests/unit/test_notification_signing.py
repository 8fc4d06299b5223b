"""Outbound notifications without sending any: Standard Webhooks signatures (checked with the
reference library), secret rotation, and the retry backoff."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from pipelines.notifications.sending import RETRY_DELAYS, decide
from pipelines.notifications.signing import (
    WebhookHeaderError,
    sign_headers,
    verify_webhook,
)
from pipelines.notifications.signing import (
    WebhookVerificationError as OurVerificationError,
)
from tests.support.receivers import BOOKING_SECRET, FINANCE_SECRET

OLD_FINANCE_SECRET = "whsec_" + base64.b64encode(b"finance-old-secret-zyxwvutsrqpon").decode()

SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_signature_golden_value_of_the_standard():
    # the Standard Webhooks / Svix test vector
    headers = sign_headers(SPEC_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                           b'{"test": 2432232314}')
    assert headers == {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
                       "webhook-timestamp": "1614265330",
                       "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}


def test_signatures_verify_with_the_reference_library_and_fail_when_tampered_or_stale():
    body = json.dumps({"type": "invoice.paid", "data": {"invoice": {"total": "50.00"}}}).encode()
    now = int(time.time())
    headers = sign_headers(FINANCE_SECRET, "msg_abc", now, body)
    assert Webhook(FINANCE_SECRET).verify(body, headers) == json.loads(body)
    verify_webhook(FINANCE_SECRET, body, headers)
    tampered = body.replace(b"50.00", b"5.00")
    with pytest.raises(WebhookVerificationError):
        Webhook(FINANCE_SECRET).verify(tampered, headers)
    with pytest.raises(OurVerificationError, match="no matching"):
        verify_webhook(FINANCE_SECRET, tampered, headers)
    # another message id with the same signature: refused too (the id is signed)
    with pytest.raises(WebhookVerificationError):
        Webhook(FINANCE_SECRET).verify(body, {**headers, "webhook-id": "msg_other"})
    stale = sign_headers(FINANCE_SECRET, "msg_abc", now - 600, body)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(FINANCE_SECRET).verify(body, stale)
    with pytest.raises(WebhookHeaderError, match="tolerance"):
        verify_webhook(FINANCE_SECRET, body, stale)
    with pytest.raises(WebhookVerificationError):
        Webhook(BOOKING_SECRET).verify(body, headers)


def test_rotation_signs_with_every_secret():
    body = b'{"type":"invoice.refunded"}'
    now = int(time.time())
    headers = sign_headers(f"{FINANCE_SECRET} {OLD_FINANCE_SECRET}", "msg_rot", now, body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert all(s.startswith("v1,") for s in headers["webhook-signature"].split(" "))
    # receivers that hold either secret accept the message; a third secret does not
    Webhook(FINANCE_SECRET).verify(body, headers)
    Webhook(OLD_FINANCE_SECRET).verify(body, headers)
    verify_webhook(OLD_FINANCE_SECRET, body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(BOOKING_SECRET).verify(body, headers)


def test_backoff_grows_and_gives_up_after_the_last_attempt():
    now = datetime(2026, 2, 1, tzinfo=UTC)
    waits = [decide(n, 500, now)[1] - now for n in range(1, 8)]
    assert waits == [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                     timedelta(hours=2), timedelta(hours=5), timedelta(hours=10),
                     timedelta(hours=10)]
    assert sum(RETRY_DELAYS, timedelta()) > timedelta(hours=24)
    assert decide(8, 500, now) == ("failed", None)
    assert decide(8, None, now) == ("failed", None)
    assert decide(3, 204, now) == ("delivered", None)
    assert decide(1, 410, now) == ("disabled", None)
    assert decide(1, None, now)[0] == "retrying"
