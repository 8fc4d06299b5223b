"""Tax at Stripe (docs/stripe-sync.md#tax): the ledger's tax goes to Stripe as `tax_amounts`, so
Stripe's totals are the ledger's totals including tax, through real Dagster runs and the stripe
SDK against the local Stripe. A DE customer at 19 % exclusive, a JP customer at 10 % inclusive,
an EU B2B customer reverse-charged (its note on the Stripe invoice), a customer without address
(no tax), a credit note of a taxed invoice, and a re-rated tax sending a new key without
duplicating a line. Golden values computed by hand below."""

from __future__ import annotations

import urllib.request
from decimal import Decimal

import stripe

from devkit.stripe_emulator import StripeEmulator
from tests.support.dagster_runs import materialized_metadata, run_billing
from tests.support.landing import event, write_lines
from tests.support.local_stripe import bill, client, sync
from tests.support.warehouse import query

# The example catalog's tax.yaml: seller DE; de_vat 19 % exclusive, jp_consumption 10 %
# inclusive. Every customer has the professional plan (USD) and 6,000 API calls in January.
CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
customers:
  - {id: de_gmbh_001, name: DE GmbH, address: {country: DE, postal_code: "10115"}}
  - {id: jp_kk_002, name: JP KK, address: {country: JP}}
  - {id: fr_sas_003, name: FR SAS, address: {country: FR}, tax_id: FR40303265045}
  - {id: us_llc_004, name: No Address LLC}
subscriptions:
  - {id: sub_de, customer: de_gmbh_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
  - {id: sub_jp, customer: jp_kk_002, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
  - {id: sub_fr, customer: fr_sas_003, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
  - {id: sub_us, customer: us_llc_004, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
"""
DE_ONLY = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H}
customers:
  - {id: de_gmbh_001, name: DE GmbH, address: {country: DE, postal_code: "10115"}}
subscriptions:
  - {id: sub_de, customer: de_gmbh_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
"""
PRICE_FIX = ('- {up_to: 10000, unit_price: "0.008"}', '- {up_to: 10000, unit_price: "0.007"}')
FIX_NOW = "2026-02-04T00:00:00Z"
DUE_NOW = "2026-02-04T02:00:00Z"


def usage(customer: str, calls: int = 6000) -> list[object]:
    return [event(f"a_{customer}_{i}", customer=customer,
                  ts=f"2026-01-{1 + i % 28:02d}T10:00:00Z") for i in range(calls)]


def catalog(env, customers: str = CUSTOMERS) -> None:
    (env["catalog"] / "customers.yaml").write_text(customers)


def stripe_invoices(emulator: StripeEmulator) -> dict[str, stripe.Invoice]:
    return {i.metadata["customer_id"]: i
            for i in client(emulator).v1.invoices.list(params={"limit": 100}).data}


def line_taxes(invoice: stripe.Invoice) -> dict[str, tuple[int, list[tuple]]]:
    """Per price key of ours (from the line description): amount and its taxes at Stripe."""
    out = {}
    for line in invoice.lines.data:
        out[line.metadata["line_id"]] = (line.amount, [
            (t.amount, t.taxable_amount, t.tax_behavior, t.taxability_reason)
            for t in line.taxes])
    return out


def ledger_lines(warehouse, customer: str) -> dict[str, tuple[str, Decimal, Decimal]]:
    return {line_id: (price, amount, tax) for line_id, price, amount, tax in query(warehouse, """
        SELECT l.line_id, l.price_key, l.amount, l.tax_amount FROM billing.invoice_lines l
        JOIN billing.invoices i USING (invoice_id) WHERE i.customer_id = $c""",
        {"c": customer})}


def test_stripe_bills_the_ledger_tax(stripe_env, local_stripe):
    catalog(stripe_env)
    write_lines(stripe_env["landing"] / "jan.jsonl",
                [e for c in ("de_gmbh_001", "jp_kk_002", "fr_sas_003", "us_llc_004")
                 for e in usage(c)])
    bill()
    result = sync()
    assert result.success
    out = materialized_metadata(result)["sync/stripe_invoices"]
    assert (out["invoices_synced"], out["invoices_failed"]) == (4, 0)
    wh = stripe_env["warehouse"]
    invoices = stripe_invoices(local_stripe)
    # Each invoice: platform fee 10.00 (in advance) + API calls 60.00 (10.00 flat + 1,000 x
    # 0.01 + 5,000 x 0.008) = 70.00 before tax; storage and exports lines of 0.00.
    ledger = {c: (total, tax, owed) for c, total, tax, owed in query(wh, """
        SELECT customer_id, total, tax_total, total_including_tax FROM billing.invoices""")}

    # DE, 19 % exclusive: 10.00 x 0.19 = 1.90; 60.00 x 0.19 = 11.40; tax 13.30; 83.30 owed
    de = invoices["de_gmbh_001"]
    assert ledger["de_gmbh_001"] == (Decimal("70.00"), Decimal("13.30"), Decimal("83.30"))
    assert (de.subtotal, de.total, de.total_excluding_tax, de.amount_due) == (
        7000, 8330, 7000, 8330)
    assert [(t.amount, t.taxable_amount, t.tax_behavior) for t in de.total_taxes] == [
        (1330, 7000, "exclusive")]
    rate = client(local_stripe).v1.tax_rates.retrieve(
        de.total_taxes[0].tax_rate_details.tax_rate)
    assert (rate.display_name, rate.percentage, rate.inclusive, rate.country,
            rate.jurisdiction, rate.tax_type, rate.description, rate.active) == (
        "VAT", 19.0, False, "DE", "DE", "vat", "de_vat", False)
    de_lines = line_taxes(de)
    for line_id, (price, amount, tax) in ledger_lines(wh, "de_gmbh_001").items():
        cents, tax_cents = int(amount * 100), int(tax * 100)
        assert de_lines[line_id] == (cents, [(tax_cents, cents, "exclusive", "standard_rated")]), \
            price
    assert {p: t for p, _, t in ledger_lines(wh, "de_gmbh_001").values()}["platform_fee"] \
        == Decimal("1.90")

    # JP, 10 % inclusive: 10.00 x 10/110 = 0.909.. -> 0.91; 60.00 x 10/110 = 5.4545.. -> 5.45;
    # tax 6.36 inside the 70.00: Stripe total 70.00, 63.64 excluding tax
    jp = invoices["jp_kk_002"]
    assert ledger["jp_kk_002"] == (Decimal("70.00"), Decimal("6.36"), Decimal("70.00"))
    assert (jp.subtotal, jp.subtotal_excluding_tax, jp.total, jp.total_excluding_tax) == (
        7000, 6364, 7000, 6364)
    jp_lines = line_taxes(jp)
    by_price = {price: jp_lines[line_id] for line_id, (price, _, _) in
                ledger_lines(wh, "jp_kk_002").items()}
    assert by_price["platform_fee"] == (1000, [(91, 909, "inclusive", "standard_rated")])
    assert by_price["api_calls"] == (6000, [(545, 5455, "inclusive", "standard_rated")])

    # FR B2B with a VAT id, seller DE: reverse charge, 0 %, the note on the Stripe invoice
    fr = invoices["fr_sas_003"]
    assert ledger["fr_sas_003"] == (Decimal("70.00"), Decimal("0.00"), Decimal("70.00"))
    assert fr.total == 7000
    assert [(f.name, f.value) for f in fr.custom_fields] == [
        ("VAT", "Reverse charge: VAT to be accounted for by the recipient")]
    assert {(t.amount, t.taxable_amount, t.taxability_reason) for t in fr.total_taxes} == {
        (0, 7000, "reverse_charge")}
    page = urllib.request.urlopen(fr.hosted_invoice_url).read().decode()
    assert "Reverse charge: VAT to be accounted for by the recipient" in page

    # no address: no tax, no tax amounts sent, no note
    us = invoices["us_llc_004"]
    assert (us.total, us.total_taxes, us.custom_fields) == (7000, [], None)
    assert all(line.taxes == [] for line in us.lines.data)
    assert de.custom_fields is None and jp.custom_fields is None

    # paying moves the amount including tax; the snapshot's total includes tax
    local_stripe.invoice_action(de.id, "pay")
    assert sync("2026-02-04T00:00:00Z").success
    assert client(local_stripe).v1.invoices.retrieve(de.id).amount_paid == 8330
    snap = dict(query(wh, "SELECT invoice_id, total FROM sync.provider_invoices"))
    owed = dict(query(wh, "SELECT invoice_id, total_including_tax FROM billing.invoices"))
    assert snap == owed
    assert query(wh, "SELECT status FROM billing.invoices WHERE customer_id = 'de_gmbh_001'") \
        == [("paid",)]
    [(tax_json,)] = query(wh, """
        SELECT json_extract_string(p.lines, '$[*].tax_amount') FROM sync.provider_invoices p
        JOIN billing.invoices i USING (invoice_id) WHERE i.customer_id = 'jp_kk_002'""")
    assert sorted(Decimal(t) for t in tax_json)[-2:] == [Decimal("0.91"), Decimal("5.45")]


def test_credit_note_of_a_taxed_invoice_credits_its_tax(stripe_env, local_stripe):
    catalog(stripe_env, DE_ONLY.replace("grace_period: PT1H}", 'grace_period: PT1H, '
                                        'auto_approve_corrections_up_to: "100"}'))
    write_lines(stripe_env["landing"] / "jan.jsonl", usage("de_gmbh_001"))
    bill()
    assert sync().success
    before = stripe_invoices(local_stripe)["de_gmbh_001"]
    plans = stripe_env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text().replace(*PRICE_FIX, 1))
    run_billing("2026-02", FIX_NOW)
    # 5,000 x 0.007 = 35.00: the API line 60.00 -> 55.00, credited 5.00 and its tax
    # 5.00 x 0.19 = 0.95: 5.95 including tax
    wh = stripe_env["warehouse"]
    assert query(wh, "SELECT total, tax_total, total_including_tax FROM billing.credit_notes") \
        == [(Decimal("5.00"), Decimal("0.95"), Decimal("5.95"))]
    result = sync(DUE_NOW)
    assert result.success
    out = materialized_metadata(result)["sync/stripe_corrections"]
    assert (out["credit_notes_issued"], out["credit_notes_failed"]) == (1, 0)
    [note] = client(local_stripe).v1.credit_notes.list().data
    rate = before.total_taxes[0].tax_rate_details.tax_rate
    [line] = note.lines.data
    assert (line.type, line.amount) == ("invoice_line_item", 500)
    assert [(t.amount, t.taxable_amount, t.tax_rate_details.tax_rate) for t in line.taxes] == [
        (95, 500, rate)]
    assert (note.subtotal, note.total, note.amount, note.total_excluding_tax) == (
        500, 595, 595, 500)
    # pre-payment: 83.30 due -> 77.35
    after = client(local_stripe).v1.invoices.retrieve(before.id)
    assert (before.amount_due, after.amount_due) == (8330, 7735)
    assert query(wh, "SELECT status, sync_error FROM billing.credit_notes") == [("issued", None)]
    assert query(wh, "SELECT total FROM sync.provider_credit_notes") == [(Decimal("5.95"),)]


def test_a_re_rated_tax_sends_a_new_key_and_no_duplicate_line(stripe_env, local_stripe):
    catalog(stripe_env, DE_ONLY)
    write_lines(stripe_env["landing"] / "jan.jsonl", usage("de_gmbh_001"))
    bill()
    wh = stripe_env["warehouse"]
    # the first add_lines fails at Stripe (500 before it runs), no retry: sync_failed
    local_stripe.update_faults(fail_next=1, match="POST /v1/invoices/")
    assert sync(max_attempts=1).success
    local_stripe.update_faults(fail_next=0, match="")
    assert query(wh, "SELECT status FROM billing.invoices") == [("issuing.sync_failed",)]
    # the rate is corrected before the retry (19 % -> 16 %): 10.00 x 0.16 = 1.60,
    # 60.00 x 0.16 = 9.60; tax 11.20; 81.20 owed
    rerate(wh, "16")
    assert sync().success
    assert query(wh, "SELECT status FROM billing.invoices") == [("payment_processing.pending",)]
    [invoice] = stripe_invoices(local_stripe).values()
    assert (invoice.total, sum(t.amount for t in invoice.total_taxes)) == (8120, 1120)
    lines = client(local_stripe).v1.invoices.line_items.list(invoice.id).data
    assert len(lines) == len({line.metadata["line_id"] for line in lines}) \
        == len(ledger_lines(wh, "de_gmbh_001"))
    keys = [k for (k,) in query(wh, """SELECT idempotency_key FROM sync.sync_attempts
                                       WHERE operation = 'invoices.add_lines' ORDER BY "at" """)]
    assert len(keys) == 2 and keys[0] != keys[1]


def test_stale_lines_at_stripe_are_updated_to_the_re_rated_tax(stripe_env, local_stripe):
    catalog(stripe_env, DE_ONLY)
    write_lines(stripe_env["landing"] / "jan.jsonl", usage("de_gmbh_001"))
    bill()
    wh = stripe_env["warehouse"]
    # add_lines commits at Stripe but its answer is lost, no retry: sync_failed with the lines
    # at Stripe at 19 %
    local_stripe.update_faults(drop_next=1, match="POST /v1/invoices/")
    assert sync(max_attempts=1).success
    local_stripe.update_faults(drop_next=0, match="")
    assert query(wh, "SELECT status FROM billing.invoices") == [("issuing.sync_failed",)]
    rerate(wh, "16")
    assert sync().success
    [invoice] = stripe_invoices(local_stripe).values()
    assert (invoice.status, invoice.total) == ("open", 8120)
    lines = client(local_stripe).v1.invoices.line_items.list(invoice.id).data
    assert len(lines) == len(ledger_lines(wh, "de_gmbh_001"))
    ops = [op for (op,) in query(wh, """SELECT operation FROM sync.sync_attempts
                                        WHERE outcome = 'ok' ORDER BY "at" """)]
    assert "invoices.update_lines" in ops and ops.count("invoices.add_lines") == 0


def rerate(warehouse, percent: str) -> None:
    """The invoice's rate corrected by hand (an operator's fix before the retry): each line's
    tax again at `percent` (exclusive), the invoice's totals following."""
    import duckdb

    con = duckdb.connect(str(warehouse))
    try:
        con.execute("""
            UPDATE billing.invoice_lines
            SET tax_rate_percent = CAST($p AS DECIMAL(38, 12)),
                tax_amount = round(amount * CAST($p AS DECIMAL(38, 12)) / 100, 2)""",
                    {"p": percent})
        con.execute("UPDATE billing.invoices SET tax_rate_percent = CAST($p AS DECIMAL(38, 12))",
                    {"p": percent})
        con.execute("""
            UPDATE billing.invoices i SET tax_total = t.tax, total_including_tax = i.total + t.tax
            FROM (SELECT invoice_id, sum(tax_amount) AS tax FROM billing.invoice_lines
                  GROUP BY invoice_id) t WHERE t.invoice_id = i.invoice_id""")
    finally:
        con.close()
