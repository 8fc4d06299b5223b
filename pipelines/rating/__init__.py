"""The rating library: pure functions from catalog and usage quantities to invoice drafts.

Plain Python over the catalog's dataclasses (``pipelines.catalog.models``): no Dagster, DuckDB,
Polars or HTTP. Service periods (``periods``), money and rounding (``money``), the pricing
models (``pricing``), the invoice cut at each boundary (``invoices``) and the invoice lifecycle
rules (``lifecycle``). Usage comes in already measured (``pipelines.invoicing.usage_measurement``
measures it in the warehouse). The choices the contract leaves open are written down in
``docs/billing-semantics.md``.
"""

from pipelines.rating.invoices import (
    Adjustment,
    InvoiceDraft,
    InvoiceLine,
    UsageBySubscription,
    UsageQuantities,
    adjust_draft,
    adjustment_amount,
    adjustment_line_id,
    build_invoice,
    build_invoices,
    invoice_id,
    line_id,
)
from pipelines.rating.money import minor_units, round_money
from pipelines.rating.periods import ServicePeriod, billing_month, boundaries, service_periods
from pipelines.rating.pricing import RatedAmount, TierCharge, rate_flat, rate_usage

__all__ = [
    "Adjustment",
    "InvoiceDraft",
    "InvoiceLine",
    "RatedAmount",
    "ServicePeriod",
    "TierCharge",
    "UsageBySubscription",
    "UsageQuantities",
    "adjust_draft",
    "adjustment_amount",
    "adjustment_line_id",
    "billing_month",
    "boundaries",
    "build_invoice",
    "build_invoices",
    "invoice_id",
    "line_id",
    "minor_units",
    "rate_flat",
    "rate_usage",
    "round_money",
    "service_periods",
]
