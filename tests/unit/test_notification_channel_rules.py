"""Where notifications may go and what is kept of a receiver's answer, without sending any:
https only (plain http to loopback), no credentials in URLs, refused by the catalog with the
channel named and again before any send; errors short and free of secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipelines.catalog import CatalogError, load_catalog
from pipelines.catalog.models import NotificationChannel
from pipelines.notifications.sending import (
    ERROR_CHARS,
    Due,
    attempt_delivery,
    error_excerpt,
    secret_texts,
)
from pipelines.notifications.urls import url_problem
from tests.support.receivers import FINANCE_SECRET

EXAMPLE_URL = "http://127.0.0.1:8790/hooks/billing"


def with_finance_url(catalog: Path, url: str) -> None:
    customers = catalog / "customers.yaml"
    text = customers.read_text()
    assert EXAMPLE_URL in text
    customers.write_text(text.replace(EXAMPLE_URL, url))


@pytest.mark.parametrize("url", [
    "https://finance.example.com/hooks/billing", "http://127.0.0.1:8790/hooks/billing",
    "http://127.42.0.9/hooks", "http://[::1]:8080/hooks", "http://localhost:8790/hooks",
    "http://LOCALHOST/hooks"])
def test_https_or_loopback_urls_are_accepted(billing_env: dict[str, Path], url: str) -> None:
    with_finance_url(billing_env["catalog"], url)
    assert load_catalog(billing_env["catalog"]).notification_channels["finance"].url == url


@pytest.mark.parametrize(("url", "says"), [
    ("http://finance.example.com/hooks/billing", "url must use https"),
    ("http://10.0.0.8/hooks", "url must use https"),
    ("http://[::ffff:127.0.0.1]/hooks", "url must use https"),
    ("http://127.0.0.1.example.net/hooks", "url must use https"),
    ("ftp://finance.example.com/hooks", "url must be https://host/"),
    ("https:///hooks", "url must be https://host/"),
    ("https://finance.example.com:port/hooks", "url is not a valid URL"),
])
def test_other_urls_are_refused_naming_the_channel(billing_env: dict[str, Path], url: str,
                                                   says: str) -> None:
    with_finance_url(billing_env["catalog"], url)
    with pytest.raises(CatalogError) as refused:
        load_catalog(billing_env["catalog"])
    [fault] = refused.value.faults
    assert "customers.yaml: notification_channels[finance]: " + says in fault


def test_credentials_in_a_url_are_refused_without_repeating_them(
        billing_env: dict[str, Path]) -> None:
    with_finance_url(billing_env["catalog"], "https://ops:hunter2secret@finance.example.com/h")
    with pytest.raises(CatalogError) as refused:
        load_catalog(billing_env["catalog"])
    [fault] = refused.value.faults
    assert "notification_channels[finance]: url must not carry credentials" in fault
    assert "hunter2secret" not in str(refused.value)


def test_delivery_refuses_a_url_the_catalog_would_refuse() -> None:
    """A channel that did not come through the catalog is checked again: nothing is sent."""
    sent: list[str] = []
    channel = NotificationChannel(key="finance", url="http://finance.example.com/hooks",
                                  secret_env="FINANCE_WEBHOOK_SECRET", event_types=())
    due = Due("msg_1", "finance", 1, "invoice.paid", "inv_1", "{}")
    attempt = attempt_delivery(due, channel, datetime(2026, 2, 1, tzinfo=UTC),
                               lambda url, body, headers: sent.append(url),  # type: ignore
                               environ={"FINANCE_WEBHOOK_SECRET": FINANCE_SECRET})
    assert sent == []
    assert (attempt.sent_at, attempt.outcome) == (None, "retrying")
    assert attempt.error is not None
    assert attempt.error.startswith("channel finance: url must use https")


def test_error_excerpts_are_short_one_line_and_secret_free() -> None:
    secrets = secret_texts(FINANCE_SECRET)
    # the whsec_ secret, its base64 part and the key as text
    assert len(secrets) == 3 and FINANCE_SECRET in secrets
    answer = ("HTTP 401: \x1b[31mwrong\x1b[0m\r\nexpected " + secrets[2] + " got "
              + secrets[1] + "; authorization=Basic b3BzOmh1bnRlcjI= proxy-authorization: "
              "Bearer abc.def.ghi token whsec_c29tZW9uZSBlbHNl webhook-signature v1,"
              "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= " + "z" * 500)
    kept = error_excerpt(answer, secrets)
    assert kept.startswith("HTTP 401: [31mwrong [0m expected [redacted] got [redacted]; "
                           "authorization=[redacted] proxy-authorization: [redacted] token "
                           "[redacted] webhook-signature v1,[redacted] zzz")
    assert len(kept) == ERROR_CHARS
    for secret in (*secrets, "b3BzOmh1bnRlcjI=", "abc.def.ghi", "c29tZW9uZSBlbHNl",
                   "g0hM9SsE"):
        assert secret not in kept
    assert url_problem("https://finance.example.com/hooks") is None
