"""The catalog's `accounts:` section: the chart of accounts the journal posts to (contract
section 10, docs/accounting.md). Every key is optional; what is left out keeps its default
(`models.Accounts`), and a catalog without the section posts to the defaults.

    accounts:
      receivable: "1200 Accounts receivable"
      deferred_revenue: "2400 Deferred revenue"
      tax_payable: "2200 Sales tax payable"
      contra_revenue: "4900 Credit notes"
      bad_debt: "6800 Bad debt expense"
      cash: {stripe: "1110 Stripe clearing", custom_invoicing: "1120 ERP clearing",
             none: "1100 Bank"}
      revenue:
        default: "4000 Revenue"
        plans: {enterprise_annual: "4100 Enterprise revenue"}
        prices: {professional: {api_calls: "4010 API revenue"}}
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from pipelines.catalog.models import Accounts, Plan

SINGLE_ACCOUNTS = ("receivable", "deferred_revenue", "tax_payable", "contra_revenue", "bad_debt")
ALLOWED_KEYS = {*SINGLE_ACCOUNTS, "revenue", "cash"}
REVENUE_KEYS = {"default", "plans", "prices"}
PROVIDERS = ("stripe", "custom_invoicing", "none")
MAX_ACCOUNT_LENGTH = 120


class Faults(Protocol):
    def fault(self, where: str, message: str) -> None: ...


def _account(reader: Faults, where: str, value: Any) -> str | None:
    """An account code: a non-empty string (a number such as 4000 is taken as its text)."""
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        reader.fault(where, f"an account must be a non-empty string, got {value!r}")
        return None
    text = str(value).strip()
    if len(text) > MAX_ACCOUNT_LENGTH or any(ch in text for ch in "\r\n\t"):
        reader.fault(where, f"an account is one line of at most {MAX_ACCOUNT_LENGTH} characters")
        return None
    return text


def _mapping(reader: Faults, where: str, value: Any) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        reader.fault(where, "must be a mapping")
        return {}
    return value


def parse_accounts(reader: Faults, sections: list[tuple[str, Any]],
                   plans: dict[str, Plan]) -> Accounts:
    """The chart of accounts from the `accounts:` sections found (at most one file may have
    one), checked against the plans and prices it names; faults go to `reader`."""
    defaults = Accounts()
    if not sections:
        return defaults
    for file, _ in sections[1:]:
        reader.fault(f"{file}: accounts", f"defined again (first in {sections[0][0]})")
    file, raw = sections[0]
    where = f"{file}: accounts"
    item = _mapping(reader, where, raw)
    unknown = sorted(str(k) for k in set(item) - ALLOWED_KEYS)
    if unknown:
        reader.fault(where, f"unknown key(s) {', '.join(unknown)}")
    changes: dict[str, Any] = {"source_file": file}
    for name in SINGLE_ACCOUNTS:
        if item.get(name) is not None:
            account = _account(reader, f"{where}.{name}", item[name])
            if account:
                changes[name] = account
    cash = dict(defaults.cash)
    for provider, value in _mapping(reader, f"{where}.cash", item.get("cash")).items():
        if provider not in PROVIDERS:
            reader.fault(f"{where}.cash", f"unknown provider {provider!r} "
                                          f"(known: {', '.join(PROVIDERS)})")
            continue
        account = _account(reader, f"{where}.cash.{provider}", value)
        if account:
            cash[provider] = account
    changes["cash"] = cash
    revenue = item.get("revenue")
    if isinstance(revenue, str | int) and not isinstance(revenue, bool):
        revenue = {"default": revenue}
    revenue = _mapping(reader, f"{where}.revenue", revenue)
    unknown = sorted(str(k) for k in set(revenue) - REVENUE_KEYS)
    if unknown:
        reader.fault(f"{where}.revenue", f"unknown key(s) {', '.join(unknown)}")
    if revenue.get("default") is not None:
        account = _account(reader, f"{where}.revenue.default", revenue["default"])
        if account:
            changes["revenue"] = account
    by_plan: dict[str, str] = {}
    for plan, value in _mapping(reader, f"{where}.revenue.plans", revenue.get("plans")).items():
        if plan not in plans:
            reader.fault(f"{where}.revenue.plans", f"unknown plan {plan!r}")
            continue
        account = _account(reader, f"{where}.revenue.plans.{plan}", value)
        if account:
            by_plan[plan] = account
    by_price: dict[tuple[str, str], str] = {}
    for plan, prices in _mapping(reader, f"{where}.revenue.prices",
                                 revenue.get("prices")).items():
        if plan not in plans:
            reader.fault(f"{where}.revenue.prices", f"unknown plan {plan!r}")
            continue
        keys = {p.key for p in plans[plan].prices}
        for price, value in _mapping(reader, f"{where}.revenue.prices.{plan}", prices).items():
            if price not in keys:
                reader.fault(f"{where}.revenue.prices.{plan}",
                             f"unknown price {price!r} of plan {plan!r}")
                continue
            account = _account(reader, f"{where}.revenue.prices.{plan}.{price}", value)
            if account:
                by_price[(plan, str(price))] = account
    changes["revenue_by_plan"] = by_plan
    changes["revenue_by_price"] = by_price
    return replace(defaults, **changes)


def account_rows(accounts: Accounts) -> list[dict[str, str | None]]:
    """billing.accounts: one row per role and scope (role, plan_key, price_key, provider,
    account, source_file): what finance maps in the accounting system."""
    source = accounts.source_file or None

    def row(role: str, account: str, plan: str | None = None, price: str | None = None,
            provider: str | None = None) -> dict[str, str | None]:
        return {"role": role, "plan_key": plan, "price_key": price, "provider": provider,
                "account": account, "source_file": source}

    rows = [row(name, getattr(accounts, name)) for name in SINGLE_ACCOUNTS]
    rows.append(row("revenue", accounts.revenue))
    rows += [row("revenue", account, plan) for plan, account in
             sorted(accounts.revenue_by_plan.items())]
    rows += [row("revenue", account, plan, price) for (plan, price), account in
             sorted(accounts.revenue_by_price.items())]
    rows += [row("cash", account, provider=provider) for provider, account in
             sorted(accounts.cash.items())]
    return rows


