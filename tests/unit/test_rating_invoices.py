"""Invoice drafts at each boundary (contract section 3): lines, commitment, discounts, ids."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.catalog.models import Discount, Meter, Plan, Price, Subscription, Tier
from pipelines.rating.invoices import (
    InvoiceDraft,
    InvoiceLine,
    build_invoice,
    build_invoices,
    invoice_id,
    line_id,
    minimum_commitment_for,
)
from pipelines.rating.periods import service_periods

D = Decimal

METERS = {
    "api_requests": Meter("api_requests", "api.request", "count"),
    "storage_gb": Meter("storage_gb", "storage.snapshot", "max", value_property="gb"),
    "exports": Meter("exports", "report.exported", "count"),
    "tokens": Meter("tokens", "api.request", "sum", value_property="tokens"),
}
PLATFORM_FEE = Price(key="platform_fee", type="flat", amount=D("10.00"), cadence="in_advance")
API_CALLS = Price(key="api_calls", type="tiered", meter="api_requests", tier_mode="graduated",
                  tiers=(Tier(D("1000"), D("0.01"), D("10.00")), Tier(D("10000"), D("0.008")),
                         Tier(None, D("0.005"))))
STORAGE = Price(key="storage", type="per_unit", meter="storage_gb", unit_price=D("0.25"),
                included_units=D("10"))
EXPORTS = Price(key="exports", type="package", meter="exports", package_size=D("100"),
                package_price=D("5.00"))
# The contract's seed plan (section 2).
PRO = Plan(key="professional", name="Professional Plan", currency="USD",
           billing_period="monthly", minimum_commitment=D("50.00"),
           prices=(PLATFORM_FEE, API_CALLS, STORAGE, EXPORTS))
PRO_NO_MINIMUM = replace(PRO, minimum_commitment=None)


def subscription(start: date, plan: Plan = PRO, **fields: object) -> Subscription:
    return Subscription(id="sub_1", customer="cust_1", plan=plan.key, start_date=start,
                        **fields)  # type: ignore[arg-type]


def by_key(invoice: InvoiceDraft) -> dict[tuple[str, str, date], InvoiceLine]:
    return {(line.line_type, line.price_key, line.period_start): line for line in invoice.lines}


def amounts(invoice: InvoiceDraft) -> list[tuple[str, str, str]]:
    return [(line.line_type, line.price_key, str(line.amount)) for line in invoice.lines]


def test_first_cut_at_start_date_bills_the_prorated_in_advance_fee() -> None:
    sub = subscription(date(2026, 1, 20), billing_anchor=1)
    invoice = build_invoice(sub, PRO, METERS, date(2026, 1, 20), {})
    # 10.00 * 12/31 (Jan 20..31 of January) = 3.8709... -> 3.87; no period closes yet
    assert amounts(invoice) == [("flat", "platform_fee", "3.87")]
    line = invoice.lines[0]
    assert (line.period_start, line.period_end) == (date(2026, 1, 20), date(2026, 2, 1))
    assert "prorated 12/31 days" in line.description
    assert (line.quantity, line.unit_price) == (D(1), D("10.00"))
    assert (invoice.period_start, invoice.period_end) == (date(2026, 1, 20), date(2026, 2, 1))
    assert invoice.billing_month == "2026-01"
    assert (invoice.subtotal, invoice.discount_total, invoice.total) == (
        D("3.87"), D("0.00"), D("3.87"))


def test_cut_closing_the_first_partial_period() -> None:
    sub = subscription(date(2026, 1, 20), billing_anchor=1)
    usage = {("api_requests", date(2026, 1, 20)): D(15420),
             ("storage_gb", date(2026, 1, 20)): D("12.5"),
             ("exports", date(2026, 1, 20)): D(101),
             ("api_requests", date(2026, 1, 1)): D(999999)}  # not a period start: ignored
    invoice = build_invoice(sub, PRO, METERS, date(2026, 2, 1), usage)
    # api: 1000*0.01 + 10 + 9000*0.008 + 5420*0.005 = 119.10
    # storage: (12.5-10)*0.25 = 0.625 -> 0.63; exports: ceil(101/100)=2 * 5.00 = 10.00
    # commitment 50 * 12/31 = 19.35 < 3.87 (January fee) + 129.73: no top-up
    # February's fee in advance: 10.00
    assert amounts(invoice) == [
        ("usage", "api_calls", "119.10"), ("usage", "storage", "0.63"),
        ("usage", "exports", "10.00"), ("flat", "platform_fee", "10.00")]
    assert invoice.subtotal == D("139.73")  # 119.10 + 0.63 + 10.00 + 10.00
    assert invoice.total == D("139.73")
    assert (invoice.period_start, invoice.period_end) == (date(2026, 1, 20), date(2026, 2, 1))
    assert invoice.billing_month == "2026-02"
    api = invoice.lines[0]
    assert api.description == "Api calls (graduated) 2026-01-20 \u2013 2026-02-01"
    assert api.meter_key == "api_requests" and api.quantity == D(15420)
    assert [t.tier_index for t in api.tiers] == [0, 1, 2]
    assert sum((t.amount for t in api.tiers), D(0)) == D("119.10")
    fee = invoice.lines[-1]
    assert (fee.period_start, fee.period_end) == (date(2026, 2, 1), date(2026, 3, 1))


def test_zero_usage_gives_zero_lines_and_the_minimum_commitment_tops_up() -> None:
    sub = subscription(date(2026, 1, 1))
    invoice = build_invoice(sub, PRO, METERS, date(2026, 2, 1), {})
    # January: 10.00 fee (billed Jan 1) + 0 usage = 10.00 < 50.00 -> top-up 40.00
    assert amounts(invoice) == [
        ("usage", "api_calls", "0.00"), ("usage", "storage", "0.00"),
        ("usage", "exports", "0.00"), ("minimum_commitment", "minimum_commitment", "40.00"),
        ("flat", "platform_fee", "10.00")]
    top_up = by_key(invoice)[("minimum_commitment", "minimum_commitment", date(2026, 1, 1))]
    assert (top_up.period_start, top_up.period_end) == (date(2026, 1, 1), date(2026, 2, 1))
    assert all(line.tiers == () for line in invoice.lines)
    assert invoice.total == D("50.00")


@pytest.mark.parametrize(
    ("calls", "top_up"),
    [
        (3500, None),    # 20 + 2500*0.008 = 40.00; + 10.00 fee = 50.00: met exactly
        (3499, "0.01"),  # 20 + 2499*0.008 = 39.992 -> 39.99; 50 - 49.99 = 0.01
        (0, "40.00"),
    ],
)
def test_minimum_commitment_counts_rounded_lines_of_the_closed_period(
        calls: int, top_up: str | None) -> None:
    sub = subscription(date(2026, 1, 1))
    usage = {("api_requests", date(2026, 1, 1)): D(calls)}
    invoice = build_invoice(sub, PRO, METERS, date(2026, 2, 1), usage)
    lines = [line for line in invoice.lines if line.line_type == "minimum_commitment"]
    assert [str(line.amount) for line in lines] == ([] if top_up is None else [top_up])


def test_minimum_commitment_is_prorated_for_a_partial_period() -> None:
    sub = subscription(date(2026, 1, 20), billing_anchor=1)
    invoice = build_invoice(sub, PRO, METERS, date(2026, 2, 1), {})
    # 50.00 * 12/31 = 19.354... -> 19.35; counted: 3.87 fee -> top-up 15.48
    top_up = by_key(invoice)[("minimum_commitment", "minimum_commitment", date(2026, 1, 20))]
    assert top_up.amount == D("15.48")
    assert "19.35 USD" in top_up.description


def test_quarterly_in_arrears_fee_and_commitment_prorated_on_the_quarter() -> None:
    support = Price(key="support", type="flat", amount=D("1200.00"), cadence="in_arrears")
    calls = Price(key="api_calls", type="tiered", meter="api_requests", tier_mode="graduated",
                  tiers=(Tier(D("100000"), D("0.004")), Tier(None, D("0.002"))))
    enterprise = Plan(key="enterprise", name="E", currency="USD", billing_period="quarterly",
                      minimum_commitment=D("3000.00"), prices=(support, calls))
    sub = subscription(date(2026, 1, 20), plan=enterprise, billing_anchor=1)
    # the start-date cut has nothing to bill (no in-advance fee) and is skipped
    assert build_invoice(sub, enterprise, METERS, date(2026, 1, 20), {}).lines == ()
    drafts = build_invoices(sub, enterprise, METERS, {}, date(2026, 2, 1))
    assert [d.boundary for d in drafts] == [date(2026, 2, 1)]
    # stub Jan 20 - Feb 1 of the quarter Nov 1 - Feb 1 (92 days): 12/92
    # support 1200 * 12/92 = 156.52; commitment 3000 * 12/92 = 391.30; top-up 234.78
    assert amounts(drafts[0]) == [
        ("flat", "support", "156.52"), ("usage", "api_calls", "0.00"),
        ("minimum_commitment", "minimum_commitment", "234.78")]
    # the next, full quarter: 150000 calls = 100000*0.004 + 50000*0.002 = 500.00
    usage = {("api_requests", date(2026, 2, 1)): D(150000)}
    full = build_invoice(sub, enterprise, METERS, date(2026, 5, 1), usage)
    # 1200 + 500 = 1700 < 3000 -> top-up 1300.00
    assert amounts(full) == [
        ("flat", "support", "1200.00"), ("usage", "api_calls", "500.00"),
        ("minimum_commitment", "minimum_commitment", "1300.00")]


def test_end_date_prorates_the_last_period_and_opens_nothing() -> None:
    sub = subscription(date(2026, 1, 1), end_date=date(2026, 3, 15))
    march = build_invoice(sub, PRO_NO_MINIMUM, METERS, date(2026, 3, 1), {})
    fee = by_key(march)[("flat", "platform_fee", date(2026, 3, 1))]
    # March 1..14 of 31 days: 10.00 * 14/31 = 4.516... -> 4.52
    assert (fee.amount, fee.period_end) == (D("4.52"), date(2026, 3, 15))
    last = build_invoice(sub, PRO, METERS, date(2026, 3, 15), {})
    # no in-advance fee; commitment 50 * 14/31 = 22.58, counted 4.52 -> top-up 18.06
    assert amounts(last) == [
        ("usage", "api_calls", "0.00"), ("usage", "storage", "0.00"),
        ("usage", "exports", "0.00"), ("minimum_commitment", "minimum_commitment", "18.06")]
    assert (last.period_start, last.period_end) == (date(2026, 3, 1), date(2026, 3, 15))
    with pytest.raises(ValueError, match="not an invoice boundary"):
        build_invoice(sub, PRO, METERS, date(2026, 4, 1), {})


def test_invalid_inputs_are_refused() -> None:
    sub = subscription(date(2026, 1, 1))
    with pytest.raises(ValueError, match="not an invoice boundary"):
        build_invoice(sub, PRO, METERS, date(2026, 1, 15), {})
    with pytest.raises(ValueError, match="plan"):
        build_invoice(replace(sub, plan="other"), PRO, METERS, date(2026, 1, 1), {})
    with pytest.raises(ValueError, match="unknown meter"):
        build_invoice(sub, PRO, {"api_requests": METERS["api_requests"]}, date(2026, 1, 1), {})


def test_percentage_discount_covers_the_charges_of_the_first_n_periods() -> None:
    sub = subscription(date(2026, 1, 1), plan=PRO_NO_MINIMUM,
                       discounts=(Discount("percentage", percent=D("20"), periods=2),))
    usage = {("api_requests", date(2026, 1, 1)): D(15420),
             ("api_requests", date(2026, 2, 1)): D(15420),
             ("api_requests", date(2026, 3, 1)): D(15420)}
    drafts = {d.boundary: d for d in build_invoices(sub, PRO_NO_MINIMUM, METERS, usage,
                                                    date(2026, 4, 1))}

    def discounts(boundary: date) -> list[tuple[date, str]]:
        return [(line.period_start, str(line.amount)) for line in drafts[boundary].lines
                if line.line_type == "discount"]

    # Jan 1: January's fee (period 0): 20% of 10.00
    assert discounts(date(2026, 1, 1)) == [(date(2026, 1, 1), "-2.00")]
    # Feb 1: January's usage (period 0): 20% of 119.10 = 23.82; February's fee (period 1)
    assert discounts(date(2026, 2, 1)) == [(date(2026, 1, 1), "-23.82"),
                                           (date(2026, 2, 1), "-2.00")]
    # Mar 1: February's usage (period 1) only; March's fee is period 2: not discounted
    assert discounts(date(2026, 3, 1)) == [(date(2026, 2, 1), "-23.82")]
    assert discounts(date(2026, 4, 1)) == []
    feb = drafts[date(2026, 2, 1)]
    # 119.10 + 0 + 0 + 10.00 = 129.10; - 25.82 = 103.28
    assert (feb.subtotal, feb.discount_total, feb.total) == (D("129.10"), D("25.82"),
                                                             D("103.28"))


def test_fixed_discount_is_per_period_and_never_makes_a_total_negative() -> None:
    sub = subscription(date(2026, 1, 1), plan=PRO_NO_MINIMUM,
                       discounts=(Discount("fixed", amount=D("15.00")),))
    usage = {("api_requests", date(2026, 1, 1)): D(100)}  # 100*0.01 + 10 = 11.00
    jan = build_invoice(sub, PRO_NO_MINIMUM, METERS, date(2026, 1, 1), usage)
    # January's 10.00 fee: 15.00 off, capped at 10.00 -> total 0.00
    assert amounts(jan)[-1] == ("discount", "discount_0", "-10.00")
    assert jan.total == D("0.00")
    feb = build_invoice(sub, PRO_NO_MINIMUM, METERS, date(2026, 2, 1), usage)
    # January's usage 11.00: the 5.00 left of January's 15.00; February's fee: 10.00 off
    assert [(line.period_start, str(line.amount)) for line in feb.lines
            if line.line_type == "discount"] == [(date(2026, 1, 1), "-5.00"),
                                                 (date(2026, 2, 1), "-10.00")]
    assert feb.total == D("6.00")  # 11.00 + 10.00 - 15.00


def test_fixed_discount_larger_than_everything_leaves_zero() -> None:
    sub = subscription(date(2026, 1, 1), discounts=(Discount("fixed", amount=D("500")),))
    invoice = build_invoice(sub, PRO, METERS, date(2026, 2, 1), {})
    assert invoice.subtotal == D("50.00")  # 40.00 top-up + 10.00 February fee
    assert invoice.discount_total == D("50.00")
    assert invoice.total == D("0.00")


def test_discounts_apply_in_order_to_what_the_previous_left() -> None:
    fee = Price(key="fee", type="flat", amount=D("100.00"), cadence="in_advance")
    plan = Plan(key="p", name="P", currency="USD", billing_period="monthly", prices=(fee,))
    percent_first = subscription(date(2026, 1, 1), plan=plan, discounts=(
        Discount("percentage", percent=D("20")), Discount("fixed", amount=D("5.00"))))
    fixed_first = replace(percent_first, discounts=percent_first.discounts[::-1])
    a = build_invoice(percent_first, plan, METERS, date(2026, 1, 1), {})
    b = build_invoice(fixed_first, plan, METERS, date(2026, 1, 1), {})
    # 100 - 20% (20.00) - 5.00 = 75.00
    assert [str(line.amount) for line in a.lines] == ["100.00", "-20.00", "-5.00"]
    # 100 - 5.00 - 20% of 95 (19.00) = 76.00
    assert [str(line.amount) for line in b.lines] == ["100.00", "-5.00", "-19.00"]
    assert (a.total, b.total) == (D("75.00"), D("76.00"))


def test_discount_applies_after_the_minimum_commitment() -> None:
    sub = subscription(date(2026, 1, 1),
                       discounts=(Discount("percentage", percent=D("20")),))
    invoice = build_invoice(sub, PRO, METERS, date(2026, 2, 1), {})
    # January: 40.00 top-up on this invoice -> 20% = 8.00; February's fee 10.00 -> 2.00
    assert [str(line.amount) for line in invoice.lines if line.line_type == "discount"] == [
        "-8.00", "-2.00"]
    assert (invoice.subtotal, invoice.discount_total, invoice.total) == (
        D("50.00"), D("10.00"), D("40.00"))


def test_due_date() -> None:
    auto = subscription(date(2026, 1, 1))
    assert build_invoice(auto, PRO, METERS, date(2026, 2, 1), {}).due_date == date(2026, 2, 1)
    send = subscription(date(2026, 1, 1), collection_method="send_invoice", days_until_due=45)
    invoice = build_invoice(send, PRO, METERS, date(2026, 2, 1), {})
    assert invoice.due_date == date(2026, 3, 18)  # Feb 1 + 45 days
    assert invoice.collection_method == "send_invoice"


def test_ids_are_deterministic() -> None:
    sub = subscription(date(2026, 1, 20), billing_anchor=1)
    boundary = date(2026, 2, 1)
    first = build_invoice(sub, PRO, METERS, boundary, {})
    again = build_invoice(sub, PRO, METERS, boundary,
                          {("api_requests", date(2026, 1, 20)): D(5)})  # re-rated draft
    expected = "inv_" + hashlib.sha256(b"sub_1|2026-02-01").hexdigest()[:24]
    assert first.invoice_id == again.invoice_id == invoice_id("sub_1", boundary) == expected
    assert [line.line_id for line in first.lines] == [line.line_id for line in again.lines]
    api = first.lines[0]
    raw = f"{expected}|api_calls|usage|2026-01-20".encode()
    assert api.line_id == "il_" + hashlib.sha256(raw).hexdigest()[:24]
    assert api.line_id == line_id(expected, "api_calls", "usage", date(2026, 1, 20))
    assert len({line.line_id for line in first.lines}) == len(first.lines)
    other = build_invoice(replace(sub, id="sub_2"), PRO, METERS, boundary, {})
    assert other.invoice_id != first.invoice_id
    assert not {line.line_id for line in other.lines} & {line.line_id for line in first.lines}
    assert invoice_id("sub_1", date(2026, 3, 1)) != first.invoice_id


def test_jpy_invoice_has_whole_yen() -> None:
    starter = Plan(key="starter_jp", name="S", currency="JPY", billing_period="monthly", prices=(
        Price(key="platform_fee", type="flat", amount=D("1500"), cadence="in_advance"),
        Price(key="api_calls", type="per_unit", meter="api_requests", unit_price=D("0.9"),
              included_units=D("1000")),
        Price(key="tokens", type="package", meter="tokens", package_size=D("10000"),
              package_price=D("120"))))
    sub = subscription(date(2026, 2, 10), plan=starter, billing_anchor=1)
    first = build_invoice(sub, starter, METERS, date(2026, 2, 10), {})
    # Feb 10..28 = 19 of 28 days: 1500 * 19/28 = 1017.857... -> 1018 yen
    assert amounts(first) == [("flat", "platform_fee", "1018")]
    usage = {("api_requests", date(2026, 2, 10)): D(2345),
             ("tokens", date(2026, 2, 10)): D(25001)}
    march = build_invoice(sub, starter, METERS, date(2026, 3, 1), usage)
    # (2345-1000)*0.9 = 1210.5 -> 1211; ceil(25001/10000)=3 * 120 = 360; March fee 1500
    assert amounts(march) == [("usage", "api_calls", "1211"), ("usage", "tokens", "360"),
                              ("flat", "platform_fee", "1500")]
    assert str(march.total) == "3071"


def test_kwd_invoice_has_three_decimals() -> None:
    fee = Price(key="fee", type="flat", amount=D("12.345"), cadence="in_advance")
    plan = Plan(key="kw", name="K", currency="KWD", billing_period="monthly", prices=(fee,),
                minimum_commitment=D("20"))
    sub = subscription(date(2026, 1, 22), plan=plan, billing_anchor=1)
    first = build_invoice(sub, plan, METERS, date(2026, 1, 22), {})
    # Jan 22..31 = 10 of 31 days: 12.345 * 10/31 = 3.98225... -> 3.982
    assert str(first.total) == "3.982"
    closing = build_invoice(sub, plan, METERS, date(2026, 2, 1), {})
    # commitment 20 * 10/31 = 6.4516... -> 6.452; top-up 6.452 - 3.982 = 2.470
    assert amounts(closing) == [("minimum_commitment", "minimum_commitment", "2.470"),
                                ("flat", "fee", "12.345")]


# ---- properties --------------------------------------------------------------------------

discounts = st.lists(
    st.one_of(
        st.builds(lambda p, n: Discount("percentage", percent=D(p), periods=n),
                  st.integers(min_value=0, max_value=100),
                  st.one_of(st.none(), st.integers(min_value=1, max_value=4))),
        st.builds(lambda a, n: Discount("fixed", amount=D(a) / 100, periods=n),
                  st.integers(min_value=0, max_value=20000),
                  st.one_of(st.none(), st.integers(min_value=1, max_value=4))),
    ),
    max_size=3,
)


@settings(max_examples=60, deadline=None)
@given(
    start=st.dates(min_value=date(2027, 1, 1), max_value=date(2029, 12, 31)),
    anchor=st.one_of(st.none(), st.integers(min_value=1, max_value=31)),
    length=st.one_of(st.none(), st.integers(min_value=1, max_value=200)),
    calls=st.lists(st.integers(min_value=0, max_value=40000), min_size=8, max_size=8),
    gb=st.lists(st.decimals(min_value=0, max_value=100, places=2), min_size=8, max_size=8),
    discount_list=discounts,
)
def test_invoice_invariants(start: date, anchor: int | None, length: int | None,
                            calls: list[int], gb: list[Decimal],
                            discount_list: list[Discount]) -> None:
    end = None if length is None else start + timedelta(days=length)
    sub = subscription(start, billing_anchor=anchor, end_date=end,
                       discounts=tuple(discount_list))
    until = start + timedelta(days=200)
    periods = service_periods(sub, PRO, until)
    usage: dict[tuple[str, date], Decimal] = {}
    for i, period in enumerate(periods[:8]):
        usage[("api_requests", period.start)] = D(calls[i])
        usage[("storage_gb", period.start)] = gb[i]
    drafts = build_invoices(sub, PRO, METERS, usage, until)
    charged: dict[date, Decimal] = defaultdict(Decimal)
    discounted: dict[date, Decimal] = defaultdict(Decimal)
    for invoice in drafts:
        assert invoice.total == sum((line.amount for line in invoice.lines), D(0))
        assert invoice.subtotal - invoice.discount_total == invoice.total
        assert invoice.total >= 0 and invoice.discount_total >= 0
        assert len({line.line_id for line in invoice.lines}) == len(invoice.lines)
        for line in invoice.lines:
            assert line.amount.as_tuple().exponent == -2
            if line.line_type == "discount":
                assert line.amount < 0
                discounted[line.period_start] -= line.amount
            else:
                assert line.amount >= 0
                charged[line.period_start] += line.amount
    for period in periods:
        if period.end <= until:  # closed: its commitment is met
            assert charged[period.start] >= minimum_commitment_for(PRO, period)
        # no period is discounted below zero, nor outside its discount's periods
        assert discounted[period.start] <= charged[period.start]
        if all(d.periods is not None and period.index >= d.periods for d in discount_list):
            assert discounted[period.start] == 0
