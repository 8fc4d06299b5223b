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
    source_version: SourceVersion | None = None     # put through the API: which version


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
class Catalog:
    """A validated catalog; lookups by key."""

    meters: dict[str, Meter]
    plans: dict[str, Plan]
    customers: dict[str, Customer]
    subscriptions: dict[str, Subscription]
    billing_profiles: dict[str, BillingProfile]
    notification_channels: dict[str, NotificationChannel]
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
