"""Standard Webhooks signing (https://www.standardwebhooks.com), as pure functions.

Every notification carries `webhook-id` (the message id, the same on every retry, so receivers
deduplicate), `webhook-timestamp` (unix seconds of the attempt) and `webhook-signature`: one
`v1,<base64 HMAC-SHA256>` per secret, space-separated, of ``f"{id}.{timestamp}.{body}"`` keyed
with the base64-decoded part of a `whsec_` secret. While a secret is rotated the channel's
variable holds the new and the old secret separated by spaces, and each gets a signature, so
receivers holding either one accept the message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
"""How far a receiver lets `webhook-timestamp` stray from its clock (the standard's 5 minutes)."""


class WebhookSecretError(ValueError):
    """A channel's secret is missing or not a `whsec_` secret."""


class WebhookVerificationError(ValueError):
    """A received webhook whose signature does not check out (a receiver answers 401)."""


class WebhookHeaderError(WebhookVerificationError):
    """A received webhook with missing or malformed headers, or a stale or future timestamp
    (a receiver answers 400)."""


def parse_secrets(value: str, *, name: str = "secret") -> list[bytes]:
    """The HMAC keys of a space-separated list of `whsec_` secrets (several during rotation).
    Errors name `name` (the environment variable), never the value."""
    keys = []
    for part in value.split():
        if not part.startswith(SECRET_PREFIX):
            raise WebhookSecretError(f"{name} must hold whsec_ secrets (space-separated)")
        try:
            key = base64.b64decode(part[len(SECRET_PREFIX):], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSecretError(f"{name} holds a whsec_ secret that is not base64") from None
        if not key:
            raise WebhookSecretError(f"{name} holds an empty whsec_ secret")
        keys.append(key)
    if not keys:
        raise WebhookSecretError(f"{name} is empty")
    return keys


def signature(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the message with one key."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def sign_headers(secrets: str, message_id: str, timestamp: int, body: bytes, *,
                 name: str = "secret") -> dict[str, str]:
    """The Standard Webhooks headers of one delivery attempt: one signature per secret in
    `secrets` (space-separated `whsec_` values)."""
    signatures = " ".join(signature(key, message_id, timestamp, body)
                          for key in parse_secrets(secrets, name=name))
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signatures}


def verify_webhook(secret: str, body: bytes, headers: Mapping[str, str], *,
                   now: datetime | None = None,
                   tolerance_seconds: int = TOLERANCE_SECONDS) -> None:
    """Check a received webhook as a receiver must: the three headers present, the timestamp
    within the tolerance of `now` (default: the clock), and one `v1` signature made with
    `secret`. Raises WebhookHeaderError (bad headers, stale) or WebhookVerificationError (no
    matching signature), saying what is wrong."""
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (message_id and stamp and signatures):
        raise WebhookHeaderError("missing webhook-id, webhook-timestamp or "
                                       "webhook-signature header")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookHeaderError("webhook-timestamp is not unix seconds") from None
    current = (now or datetime.now().astimezone()).timestamp()
    if abs(current - timestamp) > tolerance_seconds:
        raise WebhookHeaderError("webhook-timestamp is outside the tolerance (stale or "
                                       "from the future)")
    try:
        keys = parse_secrets(secret)
    except WebhookSecretError as exc:
        raise WebhookVerificationError(str(exc)) from None
    expected = {signature(key, message_id, timestamp, body) for key in keys}
    for candidate in signatures.split():
        if any(hmac.compare_digest(candidate, wanted) for wanted in expected):
            return
    raise WebhookVerificationError("no matching v1 signature")
