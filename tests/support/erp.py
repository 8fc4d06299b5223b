"""A customer's ERP on the custom invoicing app: `billing api` in its own process and the local
ERP (devkit) receiving the signed sync hooks on 127.0.0.1 and answering through the API with a
bearer token, exactly as a customer's integration would."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devkit.local_erp import LocalErp
from pipelines.api.store import ApiStore
from tests.support.api import ApiProcess, start_api, stop_api
from tests.support.warehouse import query

ERP_SECRET = "whsec_" + base64.b64encode(b"umbrella-erp-secret-0123456789ab").decode()

UMBRELLA_SUBSCRIPTION = """\
  - {id: sub_umbrella_pro, customer: umbrella_004, plan: professional, start_date: 2026-01-01,
     collection_method: send_invoice, days_until_due: 45}"""

CATALOG = """
billing_profiles:
  - {key: erp_hooks, default: true, app: custom_invoicing, grace_period: PT1H,
     sync_sla: PT24H, draft_sync_hook: true, issuing_sync_hook: true}
  - {key: erp_plain, app: custom_invoicing, grace_period: PT1H}
customers:
  - {id: umbrella_004, name: Umbrella Health, email: finance@umbrella.example}
  - {id: hooli_005, name: Hooli, email: invoices@hooli.example, billing_profile: erp_plain}
subscriptions:
{umbrella_subscription}
  - {id: sub_hooli_pro, customer: hooli_005, plan: professional, start_date: 2026-01-01}
notification_channels:
  - key: erp
    url: {url}
    secret_env: ERP_WEBHOOK_SECRET
    customers: [umbrella_004]
    event_types: [invoice.draft_sync_requested, invoice.issuing_sync_requested,
                  credit_note.draft_sync_requested, credit_note.issuing_sync_requested]
"""


def umbrella_catalog(url: str) -> str:
    """Umbrella on a profile with both hooks (its ERP at `url`), Hooli on one with none."""
    return CATALOG.replace("{url}", url).replace("{umbrella_subscription}", UMBRELLA_SUBSCRIPTION)


@dataclass
class Erp:
    """Everything the scenario drives: the warehouse, the API process and the integration."""

    warehouse: Path
    store: ApiStore
    api: ApiProcess
    integration: LocalErp
    folder: Path

    def status(self, customer: str) -> str:
        return query(self.warehouse, "SELECT status FROM billing.invoices WHERE customer_id = $c",
                     {"c": customer})[0][0]

    def invoice(self, customer: str) -> str:
        return query(self.warehouse, "SELECT invoice_id FROM billing.invoices "
                                     "WHERE customer_id = $c", {"c": customer})[0][0]

    def restart_api(self) -> None:
        stop_api(self.api)
        self.api = start_api(Path(self.store.path), self.folder / "api.log")
        self.integration.client.http.base_url = self.api.url


def start_erp(billing_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch, *,
              answer_hooks: bool = True,
              catalog: Callable[[str], str] = umbrella_catalog) -> Iterator[Erp]:
    """`billing api` in its own process, the local ERP with a token answering through it, and
    the catalog (`catalog(erp_webhook_url)`) written; stopped afterwards."""
    folder: Path = billing_env["warehouse"].parent
    store_path = folder / "api_store.sqlite"
    monkeypatch.setenv("BILLING_API_STORE", str(store_path))
    monkeypatch.setenv("ERP_WEBHOOK_SECRET", ERP_SECRET)
    store = ApiStore(str(store_path))
    token = store.create_token("umbrella-erp", ["invoices:sync", "payments:write"])
    api = start_api(store_path, folder / "api.log")
    integration = LocalErp(api.url, token, ERP_SECRET, answer_hooks=answer_hooks)
    url = integration.start()
    (billing_env["catalog"] / "customers.yaml").write_text(catalog(url))
    erp = Erp(billing_env["warehouse"], store, api, integration, folder)
    try:
        yield erp
    finally:
        integration.stop()
        stop_api(erp.api)


@pytest.fixture
def erp(billing_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Erp]:
    """Umbrella's ERP answering both hooks."""
    yield from start_erp(billing_env, monkeypatch)


@pytest.fixture
def silent_erp(billing_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Erp]:
    """An integration that receives the hooks but does not answer them (yet)."""
    yield from start_erp(billing_env, monkeypatch, answer_hooks=False)
