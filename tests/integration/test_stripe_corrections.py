"""Corrections of invoices issued at Stripe, through real Dagster runs against the local Stripe
with the stripe SDK: credit notes against Stripe's line items (unpaid: less due; paid: balance
credit or refund per credit_note_refunds), supplementary invoices, voids, Stripe's credit_note.*
events, and a month of corrections landing exactly once under faults."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import stripe

from devkit.stripe_emulator import StripeEmulator
from pipelines.providers.stripe_sync.issue_plan import to_minor
from tests.support.dagster_runs import ingest_landed, materialized_metadata, run_billing
from tests.support.landing import event, write_lines
from tests.support.local_stripe import bill, client, sync, writer_taken_while_stripe_answers
from tests.support.warehouse import query

CUSTOMERS = """
billing_profiles:
  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H,
     auto_approve_corrections_up_to: "100"}
  - {key: stripe_refunds, app: stripe, grace_period: PT1H, auto_approve_corrections_up_to: "100",
     credit_note_refunds: true}
customers:
  - {id: acme_corp_001, name: Acme Corporation, email: billing@acme.com}
  - {id: umbrella_002, name: Umbrella plc, email: ap@umbrella.test, billing_profile: stripe_refunds}
subscriptions:
  - {id: sub_acme_pro, customer: acme_corp_001, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
  - {id: sub_umbrella_pro, customer: umbrella_002, plan: professional, start_date: 2026-01-01,
     billing_anchor: 1}
"""
# Tier 2 of the professional plan's API calls: 0.008 -> 0.007 a call
PRICE_FIX = ('- {up_to: 10000, unit_price: "0.008"}', '- {up_to: 10000, unit_price: "0.007"}')
FIX_NOW = "2026-02-04T00:00:00Z"       # the billing month re-run with the fixed price
DUE_NOW = "2026-02-04T02:00:00Z"       # the credit notes' grace period (1 h) is over


def usage(customer: str, calls: int, prefix: str = "a") -> list[object]:
    return [event(f"{prefix}_{customer}_{i}", customer=customer,
                  ts=f"2026-01-{1 + i % 28:02d}T10:00:00Z") for i in range(calls)]


@pytest.fixture
def issued_at_stripe(stripe_env, local_stripe):
    """Acme and Umbrella each made 6,000 API calls in January; February's invoices are issued
    at Stripe (open). The API line: 10.00 + 1,000 x 0.01 + 5,000 x 0.008 = 60.00."""
    (stripe_env["catalog"] / "customers.yaml").write_text(CUSTOMERS)
    write_lines(stripe_env["landing"] / "jan.jsonl",
                usage("acme_corp_001", 6000) + usage("umbrella_002", 6000))
    bill()
    assert sync().success
    return stripe_env


def fix_price(env) -> None:
    plans = env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text().replace(*PRICE_FIX, 1))
    run_billing("2026-02", FIX_NOW)


def stripe_invoice(emulator: StripeEmulator, customer: str) -> stripe.Invoice:
    return next(i for i in client(emulator).v1.invoices.list(params={"limit": 100}).data
                if i.metadata["customer_id"] == customer
                and "corrects_invoice_id" not in i.metadata)


def api_line(warehouse, customer: str) -> tuple[str, str]:
    """Our API line of the customer's February invoice and its Stripe line item."""
    [(line_id, external)] = query(warehouse, """
        SELECT l.line_id, x.external_id FROM billing.invoice_lines l
        JOIN billing.invoices i USING (invoice_id)
        JOIN sync.external_ids x ON x.object_type = 'line' AND x.internal_id = l.line_id
        WHERE i.customer_id = $c AND l.price_key = 'api_calls'
          AND i.corrects_invoice_id IS NULL""", {"c": customer})
    return line_id, external


def credit_notes(warehouse) -> list[tuple]:
    return query(warehouse, """
        SELECT customer_id, credit_note_number, status, total, external_credit_note_number,
               sync_error
        FROM billing.credit_notes ORDER BY customer_id""")


def stripe_credit_notes(emulator: StripeEmulator) -> list[stripe.CreditNote]:
    return list(client(emulator).v1.credit_notes.list(params={"limit": 100})
                .auto_paging_iter())


def steps(now: str) -> dict[str, dict[str, object]]:
    result = sync(now)
    assert result.success
    return materialized_metadata(result)


def test_price_fix_after_issue_credits_the_stripe_line_item(issued_at_stripe, local_stripe):
    wh = issued_at_stripe["warehouse"]
    before = stripe_invoice(local_stripe, "acme_corp_001")
    fix_price(issued_at_stripe)
    # 5,000 x 0.007 = 35.00: the API line 60.00 -> 55.00, credited 5.00 at once (within 100)
    assert [r[:4] for r in credit_notes(wh)] == [
        ("acme_corp_001", None, "draft", Decimal("5.00")),
        ("umbrella_002", None, "draft", Decimal("5.00"))]
    # within the grace period nothing goes to Stripe
    early = steps("2026-02-04T00:30:00Z")["sync/stripe_corrections"]
    assert (early["credit_notes_candidates"], early["api_calls"]) == (0, 0)

    out = steps(DUE_NOW)["sync/stripe_corrections"]
    assert (out["credit_notes_candidates"], out["credit_notes_issued"],
            out["credit_notes_failed"]) == (2, 2, 0)
    assert out["api_calls"] == 2 * 2  # the invoice read, the credit note
    notes = {n.metadata["customer_id"]: n for n in stripe_credit_notes(local_stripe)}
    acme = notes["acme_corp_001"]
    line_id, line_item = api_line(wh, "acme_corp_001")
    [line] = acme.lines.data
    assert (line.type, line.invoice_line_item, line.amount) == (
        "invoice_line_item", line_item, 500)
    assert line.metadata["corrects_line_id"] == line_id
    assert (acme.type, acme.amount, acme.invoice, acme.status) == (
        "pre_payment", 500, before.id, "issued")
    assert acme.memo.startswith("Correction of invoice INV-202602-")
    after = client(local_stripe).v1.invoices.retrieve(before.id)
    assert (before.amount_due, after.amount_due, after.amount_remaining) == (
        before.total, before.total - 500, before.total - 500)
    # ours: numbered gap-free at issue, Stripe's number beside it, history by the sync
    # (gap-free within the month, in invoice order)
    order = [c for (c,) in query(wh, "SELECT customer_id FROM billing.credit_notes "
                                     "ORDER BY invoice_id")]
    assert credit_notes(wh) == [
        (customer, f"CN-202602-0000{order.index(customer) + 1}", "issued", Decimal("5.00"),
         notes[customer].number, None) for customer in ("acme_corp_001", "umbrella_002")]
    assert query(wh, """SELECT DISTINCT from_status, to_status, cause, actor
                        FROM billing.credit_note_status_history WHERE to_status = 'issued'""") \
        == [("draft", "issued", "issued at Stripe", "stripe_sync")]
    keys = query(wh, """SELECT DISTINCT idempotency_key FROM sync.sync_attempts
                        WHERE operation = 'credit_notes.create' ORDER BY 1""")
    assert [k[0].split(":")[2:] for k in keys] == [["credit_note.create", "pre_payment", "v1"]] * 2
    # the snapshot has Stripe's credit notes for reconciliation
    snap = query(wh, """SELECT credit_note_id, invoice_id, status, total, line_count,
                               json_extract_string(lines, '$[0].credit_note_line_id')
                        FROM sync.provider_credit_notes ORDER BY total, credit_note_id""")
    ours = query(wh, """SELECT n.credit_note_id, n.invoice_id, l.credit_note_line_id
                        FROM billing.credit_notes n JOIN billing.credit_note_lines l
                        USING (credit_note_id) ORDER BY n.credit_note_id""")
    assert snap == [(cid, iid, "issued", Decimal("5.00"), 1, lid) for cid, iid, lid in ours]
    # a re-run sends nothing; the polled credit_note.created events change nothing
    again = steps("2026-02-05T00:00:00Z")
    assert again["sync/stripe_corrections"]["api_calls"] == 0
    assert len(stripe_credit_notes(local_stripe)) == 2
    assert query(wh, "SELECT event_type, outcome FROM sync.provider_events "
                     "WHERE event_type LIKE 'credit_note.%'") == [
        ("credit_note.created", "recorded")] * 2


def invoice_id(warehouse, customer: str) -> str:
    [(found,)] = query(warehouse, "SELECT invoice_id FROM billing.invoices WHERE customer_id = $c "
                                  "AND corrects_invoice_id IS NULL", {"c": customer})
    return found


def add_manual_credit_note(warehouse, customer: str, amount: str, reason: str) -> str:
    """A goodwill credit note as `billing credit-note create` writes it: one line correcting
    no line in particular, due at once."""
    from pipelines.warehouse import connect_writer

    note = f"cn_manual_{customer}"
    invoice = invoice_id(warehouse, customer)
    with connect_writer(str(warehouse)) as con:
        con.execute("""
            INSERT INTO billing.credit_notes (credit_note_id, invoice_id, customer_id,
                billing_month, currency, total, status, reason, kind, billing_profile, app,
                issue_after, created_at, created_by, status_changed_at)
            SELECT $id, invoice_id, customer_id, billing_month, currency, $amount, 'draft',
                   $reason, 'manual', billing_profile, app, TIMESTAMPTZ '2026-02-04 00:00:00+00',
                   TIMESTAMPTZ '2026-02-04 00:00:00+00', 'finance:ana',
                   TIMESTAMPTZ '2026-02-04 00:00:00+00'
            FROM billing.invoices WHERE invoice_id = $invoice""",
                    {"id": note, "amount": Decimal(amount), "reason": reason,
                     "invoice": invoice})
        con.execute("""
            INSERT INTO billing.credit_note_lines (credit_note_line_id, credit_note_id,
                corrects_line_id, correction_id, amount, description, position)
            VALUES ($line, $id, NULL, NULL, -CAST($amount AS DECIMAL(38, 12)), $reason, 0)""",
                    {"line": f"cnl_manual_{customer}", "id": note, "amount": amount,
                     "reason": f"Credit: {reason}"})
    return note


def test_paid_invoices_credit_the_balance_or_refund_per_profile(issued_at_stripe, local_stripe):
    wh = issued_at_stripe["warehouse"]
    acme = stripe_invoice(local_stripe, "acme_corp_001")      # credit_note_refunds: false
    umbrella = stripe_invoice(local_stripe, "umbrella_002")   # credit_note_refunds: true
    for inv in (acme, umbrella):
        local_stripe.invoice_action(inv.id, "pay")
    assert steps("2026-02-03T12:00:00Z")["sync/stripe_events"]["events_applied"] == 2
    fix_price(issued_at_stripe)
    add_manual_credit_note(wh, "acme_corp_001", "2.50", "goodwill: January outage")
    out = steps(DUE_NOW)["sync/stripe_corrections"]
    assert (out["credit_notes_issued"], out["credit_notes_failed"]) == (3, 0)
    notes = {(n.metadata["customer_id"], n.metadata["kind"]): n
             for n in stripe_credit_notes(local_stripe)}
    sdk = client(local_stripe)
    # Acme: the 5.00 correction and the 2.50 goodwill go to Acme's Stripe balance
    correction, goodwill = notes["acme_corp_001", "correction"], notes["acme_corp_001", "manual"]
    assert (correction.type, correction.amount, correction.refunds,
            correction.customer_balance_transaction is not None) == (
        "post_payment", 500, [], True)
    assert correction.lines.data[0].type == "invoice_line_item"
    [line] = goodwill.lines.data
    assert (line.type, line.amount, line.description) == (
        "custom_line_item", 250, "Credit: goodwill: January outage")
    assert goodwill.memo == "goodwill: January outage"
    assert sdk.v1.customers.retrieve(acme.customer).balance == -750
    assert sdk.v1.invoices.retrieve(acme.id).post_payment_credit_notes_amount == 750
    # Umbrella: refunded on its card; the credit note's event marks our invoice partly refunded
    refund = notes["umbrella_002", "correction"]
    assert (refund.type, refund.refunds[0].amount_refunded) == ("post_payment", 500)
    assert sdk.v1.customers.retrieve(umbrella.customer).balance == 0
    charge = sdk.v1.charges.list(params={"customer": umbrella.customer}).data[0]
    assert (charge.amount_refunded, charge.refunded) == (500, False)
    status = dict(query(wh, "SELECT customer_id, status FROM billing.invoices"))
    assert status == {"acme_corp_001": "paid", "umbrella_002": "partially_refunded"}
    keys = [k for (k,) in query(wh, "SELECT DISTINCT idempotency_key FROM sync.sync_attempts "
                                    "WHERE operation = 'credit_notes.create' ORDER BY 1")]
    assert sorted(k.split(":")[3] for k in keys) == ["credit", "credit", "refund"]
    assert [r[2] for r in credit_notes(wh)] == ["issued"] * 3


def test_supplementary_invoice_is_a_stripe_invoice_naming_the_one_it_corrects(
        issued_at_stripe, local_stripe):
    wh = issued_at_stripe["warehouse"]
    original = stripe_invoice(local_stripe, "acme_corp_001")
    # 1,000 more January calls accepted after issue: 1,000 x 0.008 = 8.00 more on the API line
    write_lines(issued_at_stripe["landing"] / "late.jsonl", usage("acme_corp_001", 1000, "late"))
    ingest_landed(FIX_NOW)
    run_billing("2026-02", FIX_NOW)
    run_billing("2026-02", DUE_NOW)  # its grace period is over: it leaves draft
    out = steps(DUE_NOW)["sync/stripe_invoices"]
    assert (out["invoices_candidates"], out["invoices_synced"]) == (1, 1)
    [(ours, number, status, total, corrected)] = query(wh, """
        SELECT invoice_id, invoice_number, status, total, corrects_invoice_id
        FROM billing.invoices WHERE corrects_invoice_id IS NOT NULL""")
    assert (number, status, total, corrected) == (
        "INV-202602-00003", "payment_processing.pending", Decimal("8.00"),
        invoice_id(wh, "acme_corp_001"))
    [supplementary] = [i for i in client(local_stripe).v1.invoices.list().data
                       if i.metadata["invoice_id"] == ours]
    assert supplementary.metadata["corrects_invoice_id"] == corrected
    [(original_number,)] = query(wh, "SELECT invoice_number FROM billing.invoices "
                                     "WHERE invoice_id = $i", {"i": corrected})
    assert supplementary.description == \
        f"Supplementary invoice correcting invoice {original_number}"
    assert (supplementary.status, supplementary.total, supplementary.customer) == (
        "open", 800, original.customer)
    [line] = supplementary.lines.data
    api_line_id, _ = api_line(wh, "acme_corp_001")
    assert (line.amount, line.metadata["corrects_line_id"]) == (800, api_line_id)
    assert line.description.startswith("Correction: ")
    # the original at Stripe is untouched; nothing is sent twice
    assert client(local_stripe).v1.invoices.retrieve(original.id).total == original.total
    assert steps("2026-02-05T00:00:00Z")["sync/stripe_invoices"]["api_calls"] == 0


def void_in_ledger(warehouse, customer: str) -> str:
    """What `billing invoice void` does to the ledger: the invoice moves to voided."""
    from pipelines.invoicing.status import StatusChange, apply_status_changes
    from pipelines.warehouse import connect_writer, transaction

    invoice = invoice_id(warehouse, customer)
    with connect_writer(str(warehouse)) as con, transaction(con):
        [outcome] = apply_status_changes(con, [StatusChange(
            invoice, "voided", "void: the order was cancelled", "finance:ana")],
            now=datetime(2026, 2, 3, 12, tzinfo=UTC))
    assert outcome.outcome == "applied"
    return invoice


def test_ledger_voids_are_stripe_voids_exactly_once(issued_at_stripe, local_stripe):
    wh = issued_at_stripe["warehouse"]
    acme = stripe_invoice(local_stripe, "acme_corp_001")
    umbrella = stripe_invoice(local_stripe, "umbrella_002")
    acme_id = void_in_ledger(wh, "acme_corp_001")
    # Umbrella pays at Stripe while finance voids it in the ledger: Stripe refuses the void
    local_stripe.invoice_action(umbrella.id, "pay")
    umbrella_id = void_in_ledger(wh, "umbrella_002")
    result = steps("2026-02-03T13:00:00Z")
    out = result["sync/stripe_corrections"]
    assert (out["voids_candidates"], out["voids_synced"], out["voids_failed"]) == (2, 1, 1)
    sdk = client(local_stripe)
    assert sdk.v1.invoices.retrieve(acme.id).status == "void"
    assert sdk.v1.invoices.retrieve(umbrella.id).status == "paid"
    assert query(wh, "SELECT internal_id, external_id FROM sync.external_ids "
                     "WHERE object_type = 'invoice_void'") == [(acme_id, acme.id)]
    [(key, detail)] = query(wh, "SELECT alert_key, detail FROM health.alerts "
                                "WHERE source = 'stripe_sync'")
    assert key == f"stripe_void_failed:{umbrella_id}"
    assert "is paid; Stripe voids only open or uncollectible invoices" in detail
    # Stripe's invoice.voided comes back: already so in the ledger; the late payment is ignored
    events = dict(query(wh, "SELECT event_type, outcome FROM sync.provider_events"))
    assert events == {"invoice.voided": "already", "invoice.paid": "ignored"}
    keys = query(wh, "SELECT idempotency_key FROM sync.sync_attempts "
                     "WHERE operation = 'invoices.void_invoice'")
    assert keys == [(f"bp:{acme_id}:invoice.void:v1",)]
    # the next run voids nothing again and retries only what Stripe refused
    again = steps("2026-02-03T14:00:00Z")["sync/stripe_corrections"]
    assert (again["voids_candidates"], again["api_calls"]) == (1, 1)


def test_credit_note_voided_at_stripe_voids_ours(issued_at_stripe, local_stripe):
    from pipelines.providers.stripe_sync import apply_provider_events, record_provider_events
    from pipelines.warehouse import connect_writer

    wh = issued_at_stripe["warehouse"]
    fix_price(issued_at_stripe)
    steps(DUE_NOW)
    notes = {n.metadata["customer_id"]: n for n in stripe_credit_notes(local_stripe)}
    sdk = client(local_stripe)
    # Acme's is voided in the Dashboard and arrives by webhook; Umbrella's is polled
    sdk.v1.credit_notes.void_credit_note(notes["acme_corp_001"].id)
    [webhook] = [e.to_dict() for e in sdk.v1.events.list(
        params={"type": "credit_note.voided"}).data]
    now = datetime(2026, 2, 4, 3, tzinfo=UTC)
    with connect_writer(str(wh)) as con:
        assert record_provider_events(con, "stripe", [webhook], received_via="webhook",
                                      now=now) == 1
        assert apply_provider_events(con, now=now) == {"applied": 1}
    sdk.v1.credit_notes.void_credit_note(notes["umbrella_002"].id)
    ev = steps("2026-02-04T04:00:00Z")["sync/stripe_events"]
    assert (ev["events_received"], ev["events_applied"]) == (1, 1)
    assert [(r[0], r[2]) for r in credit_notes(wh)] == [("acme_corp_001", "voided"),
                                                         ("umbrella_002", "voided")]
    history = query(wh, """SELECT from_status, to_status, actor, cause
                           FROM billing.credit_note_status_history
                           WHERE to_status = 'voided' ORDER BY changed_at""")
    assert [h[:3] for h in history] == [("issued", "voided", "stripe_events")] * 2
    assert history[0][3] == f"stripe credit_note.voided {webhook['id']}"
    snap = query(wh, "SELECT status FROM sync.provider_credit_notes")
    assert snap == [("void",), ("void",)]


def test_credit_notes_reach_stripe_while_the_warehouse_writer_stays_free(issued_at_stripe,
                                                                        local_stripe):
    """Every request of the corrections step (and of the events and snapshot steps after it)
    is answered late, and only after another connection took the warehouse writer: nothing
    holds the warehouse while it waits on Stripe, and the credit notes still land once."""
    wh = issued_at_stripe["warehouse"]
    fix_price(issued_at_stripe)
    with writer_taken_while_stripe_answers(local_stripe, wh) as probes:
        out = steps(DUE_NOW)["sync/stripe_corrections"]
    assert (out["credit_notes_issued"], out["credit_notes_failed"]) == (2, 0)
    assert probes and [p for p in probes if not p.writer_taken] == []
    assert {("GET", "invoices"), ("POST", "credit_notes")} <= {
        (p.method, p.path.split("/")[2]) for p in probes}
    assert [r[2] for r in credit_notes(wh)] == ["issued", "issued"]
    assert_credit_notes_match_ledger(local_stripe, wh)


CHAOS_CUSTOMERS = 24
VOIDED = (3, 6, 15)          # unpaid invoices finance voids
LATE = (1, 5, 9, 13, 17, 21)  # late API calls accepted after issue


def chaos_catalog() -> str:
    """24 Stripe customers on the professional plan (50.00 minimum commitment): even ones
    export enough to be above the minimum, odd ones are topped up to it; every third refunds
    its credit notes (credit_note_refunds: true)."""
    lines = ["billing_profiles:",
             "  - {key: stripe_auto, default: true, app: stripe, grace_period: PT1H,",
             '     auto_approve_corrections_up_to: "1000"}',
             "  - {key: stripe_refunds, app: stripe, grace_period: PT1H,",
             '     auto_approve_corrections_up_to: "1000", credit_note_refunds: true}',
             "customers:"]
    subs = ["subscriptions:"]
    for i in range(CHAOS_CUSTOMERS):
        profile = ", billing_profile: stripe_refunds" if i % 3 == 2 else ""
        lines.append(f"  - {{id: c{i:02d}, name: Customer {i}, email: c{i}@example.com{profile}}}")
        subs.append(f"  - {{id: sub_c{i:02d}, customer: c{i:02d}, plan: professional, "
                    "start_date: 2026-01-01, billing_anchor: 1}")
    return "\n".join(lines + subs) + "\n"


def chaos_usage() -> list[object]:
    out: list[object] = []
    for i in range(CHAOS_CUSTOMERS):
        if i % 2 == 0:
            out += [event(f"x{i}_{n}", customer=f"c{i:02d}", name="report.exported",
                          ts="2026-01-11T00:00:00Z") for n in range(900)]
        else:
            out += usage(f"c{i:02d}", 100 * i, "u")
    return out


def assert_credit_notes_match_ledger(emulator: StripeEmulator, warehouse) -> None:
    """Exactly one Stripe credit note per credit note of ours, none of anyone else, each with
    our total and our lines (by credit_note_line_id, positive minor units)."""
    sdk = client(emulator)
    notes = stripe_credit_notes(emulator)
    ours = [n.metadata["credit_note_id"] for n in notes]
    assert len(ours) == len(set(ours)), "a credit note is at Stripe twice"
    ledger = {cid: (total, currency, ext) for cid, total, currency, ext in query(warehouse, """
        SELECT n.credit_note_id, n.total, n.currency, x.external_id FROM billing.credit_notes n
        LEFT JOIN sync.external_ids x ON x.object_type = 'credit_note'
             AND x.internal_id = n.credit_note_id""")}
    assert set(ours) == set(ledger)
    lines: dict[str, dict[str, int]] = {}
    for cid, line_id, amount, currency in query(warehouse, """
            SELECT l.credit_note_id, l.credit_note_line_id, l.amount, n.currency
            FROM billing.credit_note_lines l JOIN billing.credit_notes n USING (credit_note_id)"""):
        lines.setdefault(cid, {})[line_id] = to_minor(-amount, currency, line_id)
    for note in notes:
        cid = note.metadata["credit_note_id"]
        total, currency, mapped = ledger[cid]
        assert (note.total, note.status, note.id) == (to_minor(total, currency, cid), "issued",
                                                      mapped)
        got = {line.metadata["credit_note_line_id"]: line.amount for line in
               sdk.v1.credit_notes.line_items.list(note.id, params={"limit": 100}).data}
        assert got == lines[cid], cid


def test_a_month_of_corrections_lands_exactly_once_under_faults(stripe_env, local_stripe):
    wh = stripe_env["warehouse"]
    (stripe_env["catalog"] / "customers.yaml").write_text(chaos_catalog())
    write_lines(stripe_env["landing"] / "jan.jsonl", chaos_usage())
    bill()
    assert sync(requests_per_second=5000).success
    sdk = client(local_stripe)
    at_stripe = {i.metadata["customer_id"]: i for i in
                 sdk.v1.invoices.list(params={"limit": 100}).auto_paging_iter()}
    assert len(at_stripe) == CHAOS_CUSTOMERS
    paid = [f"c{i:02d}" for i in range(CHAOS_CUSTOMERS) if i % 4 in (0, 1)]
    for customer in paid:
        local_stripe.invoice_action(at_stripe[customer].id, "pay")
    assert sync("2026-02-03T12:00:00Z", requests_per_second=5000).success
    voided = [void_in_ledger(wh, f"c{i:02d}") for i in VOIDED]
    write_lines(stripe_env["landing"] / "late.jsonl",
                [e for i in LATE for e in usage(f"c{i:02d}", 200, "late")])
    ingest_landed(FIX_NOW)
    plans = stripe_env["catalog"] / "plans.yaml"
    plans.write_text(plans.read_text().replace(
        '{key: platform_fee, type: flat, amount: "10.00", cadence: in_advance}',
        '{key: platform_fee, type: flat, amount: "7.50", cadence: in_advance}', 1))
    run_billing("2026-02", FIX_NOW)
    run_billing("2026-02", DUE_NOW)
    notes, supplementary = query(wh, """
        SELECT (SELECT count(*) FROM billing.credit_notes),
               (SELECT count(*) FROM billing.invoices WHERE corrects_invoice_id IS NOT NULL
                AND status = 'issuing')""")[0]
    # every invoice not voided: the fee's 2.50 credited; the 10 odd ones not voided (topped up
    # to the minimum) owe it back on the commitment line (late usage moves the API line too)
    assert (notes, supplementary) == (CHAOS_CUSTOMERS - len(VOIDED), 10)

    # a flaky network and no retry: writes answer 500 (not made) or are made at Stripe and
    # their answer is lost
    local_stripe.update_faults(match="POST /v1/", error_rate=0.3, drop_rate=0.4, seed=5)
    assert sync(DUE_NOW, requests_per_second=5000, max_attempts=1).success
    failed = {cid for (cid,) in query(wh, "SELECT credit_note_id FROM billing.credit_notes "
                                          "WHERE status = 'draft'")}
    made = {n.metadata["credit_note_id"] for n in stripe_credit_notes(local_stripe)}
    assert failed & made, "some credit notes are at Stripe but not recorded as issued"
    assert failed - made, "some credit notes were refused before Stripe made them"
    assert query(wh, "SELECT count(*) FROM health.alerts WHERE alert_key LIKE "
                     "'stripe_sync_failed:cn_%'") == [(len(failed),)]

    # a day later (Stripe forgot the idempotency keys), with 500s, 429s and drops
    local_stripe.advance_clock(25 * 3600)
    local_stripe.update_faults(match="", error_rate=0.1, drop_rate=0.1, rate_limit_rate=0.05,
                               retry_after=0, seed=7)
    result = sync("2026-02-05T03:00:00Z", requests_per_second=5000, max_attempts=12)
    local_stripe.update_faults(error_rate=0, drop_rate=0, rate_limit_rate=0)
    assert result.success
    out = materialized_metadata(result)["sync/stripe_corrections"]
    assert out["credit_notes_failed"] == 0 and out["retries"] > 0
    looked_up = query(wh, "SELECT count(DISTINCT internal_id) FROM sync.sync_attempts "
                          "WHERE operation = 'credit_notes.list' AND outcome = 'ok'")
    assert looked_up == [(len(failed),)]  # each note tried before is looked for at Stripe
    assert local_stripe.stats()["faults_injected"]["dropped"] > 0
    assert query(wh, "SELECT status, count(*) FROM billing.credit_notes GROUP BY ALL") == [
        ("issued", notes)]
    numbers = sorted(n for (n,) in query(wh, "SELECT credit_note_number FROM "
                                             "billing.credit_notes"))
    assert numbers == [f"CN-202602-{n:05d}" for n in range(1, notes + 1)]
    assert query(wh, "SELECT count(*) FROM health.alerts WHERE source = 'stripe_sync'") == [(0,)]

    # exactly once, amounts equal to the ledger
    assert_credit_notes_match_ledger(local_stripe, wh)
    stripe_invoices = list(sdk.v1.invoices.list(params={"limit": 100}).auto_paging_iter())
    by_ours: dict[str, list[stripe.Invoice]] = {}
    for inv in stripe_invoices:
        by_ours.setdefault(inv.metadata["invoice_id"], []).append(inv)
    ledger = {iid: (total, currency) for iid, total, currency in query(
        wh, "SELECT invoice_id, total, currency FROM billing.invoices WHERE total <> 0")}
    assert {k: len(v) for k, v in by_ours.items()} == dict.fromkeys(ledger, 1)
    invoice_lines: dict[str, dict[str, int]] = {}
    for iid, line_id, amount, currency in query(wh, """
            SELECT l.invoice_id, l.line_id, l.amount, i.currency
            FROM billing.invoice_lines l JOIN billing.invoices i USING (invoice_id)"""):
        invoice_lines.setdefault(iid, {})[line_id] = to_minor(amount, currency, line_id)
    for invoice_id, (inv,) in by_ours.items():
        assert inv.total == to_minor(*ledger[invoice_id], invoice_id)
        got = {line.metadata["line_id"]: line.amount for line in
               sdk.v1.invoices.line_items.list(inv.id, params={"limit": 100}).data}
        assert got == invoice_lines[invoice_id], invoice_id
    credited = {iid: to_minor(total, currency, iid) for iid, total, currency in query(
        wh, "SELECT invoice_id, sum(total), currency FROM billing.credit_notes GROUP BY ALL")}
    refunds_profile = {iid for (iid,) in query(wh, "SELECT invoice_id FROM billing.invoices "
                                                   "WHERE billing_profile = 'stripe_refunds'")}
    for invoice_id, (inv,) in by_ours.items():
        credit = credited.get(invoice_id, 0)
        if invoice_id in voided:
            assert inv.status == "void"
        elif inv.status == "paid" and inv.metadata["customer_id"] in paid:
            assert inv.post_payment_credit_notes_amount == credit
            if invoice_id in refunds_profile:
                charge = sdk.v1.charges.list(params={"customer": inv.customer}).data[0]
                assert charge.amount_refunded == credit
        elif "corrects_invoice_id" not in inv.metadata:
            assert inv.pre_payment_credit_notes_amount == credit
            assert inv.amount_remaining == inv.total - credit
    assert sorted(query(wh, "SELECT internal_id FROM sync.external_ids "
                            "WHERE object_type = 'invoice_void'")) == sorted(
        (v,) for v in voided)

    # re-running creates nothing twice, and calls Stripe only to poll and snapshot
    before = len(stripe_credit_notes(local_stripe)), len(stripe_invoices)
    again = materialized_metadata(sync("2026-02-05T04:00:00Z", requests_per_second=5000))
    assert again["sync/stripe_corrections"]["api_calls"] == 0
    assert again["sync/stripe_invoices"]["api_calls"] == 0
    assert (len(stripe_credit_notes(local_stripe)),
            len(list(sdk.v1.invoices.list(params={"limit": 100}).auto_paging_iter()))) == before
    assert_credit_notes_match_ledger(local_stripe, wh)
