"""Webhook receivers of outbound notifications: a customer's booking system and the finance
team (devkit's BookingSystem on 127.0.0.1), their signing secrets and their catalog channels."""

from __future__ import annotations

import base64
from pathlib import Path

BOOKING_SECRET = "whsec_" + base64.b64encode(b"booking-system-secret-0123456789").decode()
FINANCE_SECRET = "whsec_" + base64.b64encode(b"finance-team-secret-abcdefghijkl").decode()


def channels_yaml(booking_url: str, finance_url: str) -> str:
    """The booking system of one customer, and finance copied on failures, refunds and
    corrections (credit notes, voids, corrected invoices) of every customer."""
    return f"""
notification_channels:
  - key: booking
    url: {booking_url}
    secret_env: BOOKING_WEBHOOK_SECRET
    customers: [initech_003]
    event_types: [invoice.created, invoice.issued, invoice.paid, invoice.refunded,
                  invoice.voided, credit_note.issued, invoice.corrected]
  - key: finance
    url: {finance_url}
    secret_env: FINANCE_WEBHOOK_SECRET
    event_types: [invoice.payment_failed, invoice.refunded, credit_note.created,
                  credit_note.issued, invoice.voided, invoice.corrected]
"""


def write_catalog(env: dict[str, Path], booking_url: str, finance_url: str,
                  customers: str) -> None:
    """The catalog's customers.yaml: `customers` and the two receivers' channels."""
    (env["catalog"] / "customers.yaml").write_text(
        customers + channels_yaml(booking_url, finance_url))
