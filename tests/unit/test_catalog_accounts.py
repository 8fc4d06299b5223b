"""The catalog's `accounts:` section (pipelines/catalog/accounts.py): defaults when absent,
overrides per key, revenue per plan and price, every fault named, and billing.accounts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.catalog import CatalogError, load_catalog
from pipelines.catalog.accounts import account_rows
from pipelines.catalog.models import Accounts
from pipelines.catalog.warehouse_tables import catalog_frames, check_catalog_frames
from tests.support.environment import EXAMPLE_CATALOG


def _with_accounts(tmp_path: Path, text: str) -> Path:
    folder = shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")
    (folder / "accounts.yaml").write_text(text, encoding="utf-8")
    return folder


def test_without_the_section_every_account_is_the_default(tmp_path: Path) -> None:
    folder = shutil.copytree(EXAMPLE_CATALOG, tmp_path / "catalog")
    (folder / "accounts.yaml").unlink(missing_ok=True)
    catalog = load_catalog(folder)
    assert catalog.accounts == Accounts()
    assert catalog.accounts.revenue_account("professional", "api_calls") == "4000 Revenue"


def test_accounts_override_defaults_per_key_plan_and_price(tmp_path: Path) -> None:
    folder = _with_accounts(tmp_path, """
accounts:
  receivable: 1210
  cash: {stripe: "1111 Stripe"}
  revenue:
    default: "4001 Sales"
    plans: {enterprise_annual: "4100 Enterprise"}
    prices: {professional: {api_calls: "4010 API"}}
""")
    accounts = load_catalog(folder).accounts
    assert accounts.receivable == "1210"
    assert accounts.cash == {**Accounts().cash, "stripe": "1111 Stripe"}
    assert accounts.deferred_revenue == Accounts().deferred_revenue
    assert accounts.revenue_account("professional", "api_calls") == "4010 API"
    assert accounts.revenue_account("professional", "storage") == "4001 Sales"
    assert accounts.revenue_account("enterprise_annual", None) == "4100 Enterprise"
    frames = catalog_frames(load_catalog(folder))
    check_catalog_frames(frames)
    rows = {(r["role"], r["plan_key"], r["price_key"], r["provider"]): r["account"]
            for r in frames["accounts"].iter_rows(named=True)}
    assert rows[("revenue", "professional", "api_calls", None)] == "4010 API"
    assert rows[("cash", None, None, "none")] == Accounts().cash["none"]
    assert len(rows) == len(account_rows(accounts)) == 5 + 1 + 1 + 1 + 3


def test_every_fault_of_the_section_is_named(tmp_path: Path) -> None:
    folder = _with_accounts(tmp_path, """
accounts:
  receivable: ""
  ledger: "9999"
  cash: {paypal: "1130"}
  revenue:
    plans: {nope: "4100"}
    prices: {professional: {nope: "4010"}}
""")
    with pytest.raises(CatalogError) as caught:
        load_catalog(folder)
    faults = "\n".join(caught.value.faults)
    assert "accounts.yaml: accounts.receivable: an account must be a non-empty string" in faults
    assert "accounts: unknown key(s) ledger" in faults
    assert "accounts.cash: unknown provider 'paypal'" in faults
    assert "accounts.revenue.plans: unknown plan 'nope'" in faults
    assert "accounts.revenue.prices.professional: unknown price 'nope'" in faults
