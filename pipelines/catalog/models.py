"""The catalog users configure (contract section 2), as typed, immutable objects.

Every amount is a `Decimal` parsed from a decimal string; no float ever touches a price.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Literal

Aggregation = Literal["count", "sum", "max", "min", "avg", "unique_count", "latest"]
PriceType = Literal["flat", "per_unit", "package", "tiered"]
Cadence = Literal["in_advance", "in_arrears"]
TierMode = Literal["graduated", "volume"]
BillingPeriod = Literal["monthly", "quarterly", "yearly"]
CollectionMethod = Literal["charge_automatically", "send_invoice"]
App = Literal["stripe", "custom_invoicing", "none"]
CorrectionPolicy = Literal["documents", "next_invoice"]
"""How an issued invoice's corrections reach the customer (contract section 9): credit notes and
supplementary invoices, or correction lines on the subscription's next invoice."""

AGGREGATIONS: tuple[str, ...] = ("count", "sum", "max", "min", "avg", "unique_count", "latest")
AGGREGATIONS_NEEDING_VALUE: tuple[str, ...] = ("sum", "max", "min", "avg", "latest")
PERIOD_MONTHS: dict[str, int] = {"monthly": 1, "quarterly": 3, "yearly": 12}
REVERSE_CHARGE_KEY = "reverse_charge"
"""The tax_rate_key of lines reverse-charged (EU B2B, 0 %): reserved, no catalog rate has it."""


@dataclass(frozen=True)
class Meter:
    """How events of one name become a quantity per service period."""

    key: str
    event_name: str
    aggregation: Aggregation
    value_property: str | None = None
    unique_property: str | None = None
    filters: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    source_file: str = ""


@dataclass(frozen=True)
class Tier:
    """One tier of a tiered price; `up_to` is inclusive, None for the final open tier."""

    up_to: Decimal | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal("0")


@dataclass(frozen=True)
class Price:
    """One charge of a plan: a flat fee or a usage price on a meter."""

    key: str
    type: PriceType
    meter: str | None = None
    description: str | None = None
    amount: Decimal | None = None
    cadence: Cadence = "in_arrears"
    unit_price: Decimal | None = None
    included_units: Decimal = Decimal("0")
    package_size: Decimal | None = None
    package_price: Decimal | None = None
    tier_mode: TierMode | None = None
    tiers: tuple[Tier, ...] = ()

    @property
    def is_usage(self) -> bool:
        return self.type != "flat"


@dataclass(frozen=True)
class Plan:
    key: str
    name: str
    currency: str
    billing_period: BillingPeriod
    prices: tuple[Price, ...]
    minimum_commitment: Decimal | None = None
    source_file: str = ""

    @property
    def period_months(self) -> int:
        return PERIOD_MONTHS[self.billing_period]

    @property
    def meter_keys(self) -> frozenset[str]:
        return frozenset(p.meter for p in self.prices if p.meter)


@dataclass(frozen=True)
class Address:
    """Where a customer is, for tax (contract section 10): an ISO 3166-1 alpha-2 country, and
    optionally a region (a state or province code such as ``CA``) and a postal code."""

    country: str
    region: str | None = None
    postal_code: str | None = None


@dataclass(frozen=True)
class SourceVersion:
    """The version of a customer or subscription put through the integration API (contract
    section 11): its number, when and by which token it was put."""

    version: int
    changed_at: datetime
    changed_by: str


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str | None = None
    billing_profile: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    source_file: str = ""
    address: Address | None = None   # None: no tax is applied (docs/tax.md)
    tax_id: str | None = None        # a VAT/GST number: a business customer (B2B)
    source_version: SourceVersion | None = None     # put through the API: which version


@dataclass(frozen=True)
class TaxRate:
    """A sales tax or VAT rate of one jurisdiction (country, optionally a region of it).

    ``percent`` is a decimal (``"19"``, ``"7.25"``); an ``inclusive`` rate is contained in the
    prices (tax = amount - amount / (1 + percent/100)), an exclusive one is added on top.
    """

    key: str
    country: str
    percent: Decimal
    inclusive: bool = False
    region: str | None = None
    name: str | None = None
    source_file: str = ""


@dataclass(frozen=True)
class Seller:
    """Who issues the invoices: its country decides EU reverse charge (contract section 10)."""

    country: str
    tax_id: str | None = None
    source_file: str = ""


@dataclass(frozen=True)
class Discount:
    """A percentage or fixed discount on the subtotal, for `periods` periods (None: forever)."""

    type: Literal["percentage", "fixed"]
    percent: Decimal | None = None
    amount: Decimal | None = None
    periods: int | None = None


@dataclass(frozen=True)
class Subscription:
    id: str
    customer: str
    plan: str
    start_date: date
    end_date: date | None = None
    billing_anchor: int | None = None
    collection_method: CollectionMethod = "charge_automatically"
    days_until_due: int | None = None
    discounts: tuple[Discount, ...] = ()
    source_file: str = ""
    source_version: SourceVersion | None = None     # put through the API: which version

    @property
    def anchor_day(self) -> int:
        return self.billing_anchor if self.billing_anchor is not None else self.start_date.day

    def active_on(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day < self.end_date)


@dataclass(frozen=True)
class BillingProfile:
    key: str
    app: App
    default: bool = False
    grace_period: timedelta = timedelta(0)
    draft_sync_hook: bool = False
    issuing_sync_hook: bool = False
    sync_sla: timedelta = timedelta(hours=24)  # longest wait in a syncing state before an alert
    corrections: CorrectionPolicy = "documents"
    auto_approve_corrections_up_to: Decimal = Decimal("0")
    credit_note_refunds: bool = False
    source_file: str = ""


@dataclass(frozen=True)
class NotificationChannel:
    key: str
    url: str
    secret_env: str | None
    event_types: tuple[str, ...]
    customers: tuple[str, ...] = ()
    source_file: str = ""


@dataclass(frozen=True)
class Accounts:
    """The chart of accounts the journal posts to (contract section 10; docs/accounting.md).

    Every value is an account code of the accounting system, as finance names it. Revenue goes to
    the account of the line's price (``revenue_by_price[(plan, price)]``), else of its plan
    (``revenue_by_plan[plan]``), else ``revenue``. Cash arrives in the clearing account of the
    invoice's provider (``cash[app]``: stripe, custom_invoicing, none). The defaults are used
    when the catalog has no ``accounts:`` section, and for every key it leaves out.
    """

    receivable: str = "1200 Accounts receivable"
    revenue: str = "4000 Revenue"
    revenue_by_plan: dict[str, str] = field(default_factory=dict)
    revenue_by_price: dict[tuple[str, str], str] = field(default_factory=dict)
    deferred_revenue: str = "2400 Deferred revenue"
    tax_payable: str = "2200 Sales tax payable"
    cash: dict[str, str] = field(default_factory=lambda: {
        "stripe": "1110 Stripe clearing", "custom_invoicing": "1120 Custom invoicing clearing",
        "none": "1100 Bank"})
    contra_revenue: str = "4900 Credit notes (contra revenue)"
    bad_debt: str = "6800 Bad debt expense"
    source_file: str = ""

    def revenue_account(self, plan_key: str, price_key: str | None) -> str:
        """Where a line of this plan and price is credited: price, else plan, else default."""
        if price_key is not None and (plan_key, price_key) in self.revenue_by_price:
            return self.revenue_by_price[(plan_key, price_key)]
        return self.revenue_by_plan.get(plan_key, self.revenue)


@dataclass(frozen=True)
class Catalog:
    """A validated catalog; lookups by key."""

    meters: dict[str, Meter]
    plans: dict[str, Plan]
    customers: dict[str, Customer]
    subscriptions: dict[str, Subscription]
    billing_profiles: dict[str, BillingProfile]
    notification_channels: dict[str, NotificationChannel]
    tax_rates: dict[str, TaxRate] = field(default_factory=dict)
    seller: Seller | None = None
    accounts: Accounts = field(default_factory=Accounts)
    personal_properties: tuple[str, ...] = ()
    """Event properties that hold personal data (dotted for nesting), for every event name:
    an erasure pseudonymises their values (contract section 11)."""

    @property
    def default_profile(self) -> BillingProfile | None:
        return next((p for p in self.billing_profiles.values() if p.default), None)

    def profile_of(self, customer_id: str) -> BillingProfile | None:
        """The billing profile that handles a customer: its override, else the default."""
        customer = self.customers[customer_id]
        if customer.billing_profile:
            return self.billing_profiles[customer.billing_profile]
        return self.default_profile
