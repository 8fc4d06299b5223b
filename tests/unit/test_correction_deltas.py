"""Corrections of an issued invoice, per pricing model, with hand-computed deltas (contract
section 9): the production billing steps (tests/support/books.py, no Dagster) rate January's
usage into the invoice cut on 2026-02-01, issue it after its one-hour grace period, then a late
file or a catalog fix changes the rating; the re-run records one correction per changed line
(rated - issued), decreases on a credit note and increases on a supplementary invoice, both
issued after the grace period while the issued invoice never changes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.invoicing.audit import corrections_cover
from pipelines.invoicing.manual_documents import (
    ManualDocumentError,
    create_manual_credit_note,
    void_invoice,
)
from pipelines.providers.stripe_sync.correction_writes import void_credit_notes
from pipelines.rating.corrections import CreditSplit, LineDelta, split_credit
from pipelines.warehouse import transaction
from tests.support.books import Books
from tests.support.landing import event

MONTH = "2026-02"
JAN_LANDED = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
ISSUE_RUN = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)        # grace PT1H over: issued
LATE_LANDED = datetime(2026, 2, 1, 10, 0, tzinfo=UTC)     # after issue
CORRECTION_RUN = datetime(2026, 2, 2, 0, 0, tzinfo=UTC)   # deltas recorded, documents drafted
DOCUMENTS_RUN = datetime(2026, 2, 2, 2, 0, tzinfo=UTC)    # their grace period over: issued

METERS = """
meters:
  - {key: api_requests, event_name: api.request, aggregation: count}
  - {key: exports, event_name: report.exported, aggregation: count}
"""
FIXED_METERS = """
meters:
  - {key: api_requests, event_name: api.request, aggregation: count,
     filters: {endpoint: /v1/users}}
  - {key: exports, event_name: report.exported, aggregation: count}
"""

# Every correction within 100.00 is approved at once, so the re-run makes its documents.
CUSTOMERS = """
billing_profiles:
  - {key: manual, default: true, app: none, grace_period: PT1H,
     auto_approve_corrections_up_to: "100.00"}
customers:
  - {id: golden_001, name: Golden Deltas}
subscriptions:
  - id: sub_golden
    customer: golden_001
    plan: {plan}
    start_date: 2026-01-01
{extra}"""

GRADUATED = """
plans:
  - key: graduated
    name: Graduated
    currency: USD
    billing_period: monthly
    prices:
      - key: api_calls
        meter: api_requests
        type: tiered
        tier_mode: graduated
        tiers:
          - {up_to: 100, unit_price: "0.10", flat_fee: "2.00"}
          - {up_to: null, unit_price: "0.05", flat_fee: "1.00"}
"""
VOLUME = """
plans:
  - key: volume
    name: Volume
    currency: USD
    billing_period: monthly
    prices:
      - key: api_calls
        meter: api_requests
        type: tiered
        tier_mode: volume
        tiers:
          - {up_to: 100, unit_price: "0.10"}
          - {up_to: 1000, unit_price: "0.08"}
          - {up_to: null, unit_price: "0.05"}
"""
PACKAGE = """
plans:
  - key: package
    name: Package
    currency: USD
    billing_period: monthly
    prices:
      - {key: exports, meter: exports, type: package, package_size: 100,
         package_price: "5.00", included_units: "20"}
"""
COMMITTED = """
plans:
  - key: committed
    name: Committed
    currency: USD
    billing_period: monthly
    minimum_commitment: "50.00"
    prices:
      - {key: api_calls, meter: api_requests, type: per_unit, unit_price: "0.10"}
"""
PER_CALL = """
plans:
  - key: per_call
    name: Per call
    currency: USD
    billing_period: monthly
    prices:
      - {key: api_calls, meter: api_requests, type: per_unit, unit_price: "0.01"}
"""
FIFTEEN_PERCENT_OFF = """    discounts:
      - {type: percentage, percent: "15", periods: null}
"""


def calls(prefix: str, count: int, endpoint: str = "/v1/users") -> list[dict[str, object]]:
    """`count` API calls of golden_001 in January (the period the 2026-02-01 invoice closes)."""
    return [event(f"{prefix}_{i}", customer="golden_001", ts=f"2026-01-{1 + i % 31:02d}T12:00:00Z",
                  properties={"endpoint": endpoint}) for i in range(count)]


def exports(prefix: str, count: int) -> list[dict[str, object]]:
    return [event(f"{prefix}_{i}", customer="golden_001", name="report.exported",
                  ts="2026-01-20T08:00:00Z", properties={"format": "csv"}) for i in range(count)]


@pytest.fixture
def books(tmp_path: Path) -> Iterator[Books]:
    """The test's books, every step on one warehouse connection."""
    books = Books(tmp_path / "books")
    with books.session():
        yield books


def issued_books(books: Books, plan: str, plan_key: str, january: list[dict[str, object]],
                 extra: str = "") -> Books:
    """The catalog written, January's usage landed, the month rated and its invoice issued."""
    books.write_catalog(meters=METERS, plans=plan,
                        customers=CUSTOMERS.replace("{plan}", plan_key).replace("{extra}", extra))
    books.land("january", january, now=JAN_LANDED)
    books.rate(MONTH, now=ISSUE_RUN)
    assert books.rows("SELECT invoice_number, status FROM billing.invoices") == [
        ("INV-202602-00001", "issued")]
    return books


def issued_lines(books: Books) -> dict[str, tuple[str, Decimal]]:
    """price_key -> (line_id, amount) of the issued invoice."""
    return {price_key: (line_id, amount) for line_id, price_key, amount in books.rows("""
        SELECT l.line_id, l.price_key, l.amount FROM billing.invoice_lines l
        JOIN billing.invoices i USING (invoice_id)
        WHERE i.corrects_invoice_id IS NULL""")}


def corrections(books: Books) -> list[tuple[str, str, Decimal, Decimal, Decimal, str, str]]:
    """(price_key, line_id, issued, rated, delta, document_type, status) per correction."""
    return books.rows("""
        SELECT price_key, line_id, issued_amount, rated_amount, delta, document_type, status
        FROM billing.corrections ORDER BY price_key""")


def credit_notes(books: Books) -> list[tuple[str | None, str, Decimal, list[tuple[str, Decimal]]]]:
    """(number, status, total credited, [(corrected price_key, line amount)]) per credit note."""
    notes = books.rows("""SELECT credit_note_id, credit_note_number, status, total
                          FROM billing.credit_notes ORDER BY credit_note_id""")
    return [(number, status, total, books.rows("""
                SELECT c.price_key, l.amount FROM billing.credit_note_lines l
                JOIN billing.corrections c USING (correction_id)
                WHERE l.credit_note_id = $id AND l.corrects_line_id = c.line_id
                ORDER BY l.position""", {"id": note_id}))
            for note_id, number, status, total in notes]


def supplementary_invoices(books: Books
                           ) -> list[tuple[str | None, str, Decimal, list[tuple[str, Decimal]]]]:
    """(number, status, total, [(corrected price_key, line amount)]) per supplementary
    invoice; each points at the issued invoice and its lines at the lines they correct."""
    (original,), = books.rows("SELECT invoice_id FROM billing.invoices "
                              "WHERE corrects_invoice_id IS NULL")
    found = books.rows("""SELECT invoice_id, invoice_number, status, total, corrects_invoice_id
                          FROM billing.invoices WHERE corrects_invoice_id IS NOT NULL
                          ORDER BY invoice_id""")
    assert all(row[4] == original for row in found)
    return [(number, status, total, books.rows("""
                SELECT c.price_key, l.amount FROM billing.invoice_lines l
                JOIN billing.corrections c USING (correction_id)
                WHERE l.invoice_id = $id AND l.line_type = 'correction'
                  AND l.corrects_line_id = c.line_id AND l.corrects_invoice_id = $original
                ORDER BY l.position""", {"id": invoice_id, "original": original}))
            for invoice_id, number, status, total, _ in found]


def assert_correction_run(books: Books, *, issued_total: Decimal) -> None:
    """Re-running the same rating changes nothing; the issued invoice keeps its total; every
    issued line + its corrections = the latest rating."""
    before = (corrections(books), credit_notes(books), supplementary_invoices(books))
    books.rate(MONTH, now=CORRECTION_RUN)
    assert (corrections(books), credit_notes(books), supplementary_invoices(books)) == before
    assert books.rows("SELECT total, status FROM billing.invoices "
                      "WHERE corrects_invoice_id IS NULL") == [(issued_total, "issued")]
    uncovered = books.rows("""
        SELECT r.line_id, r.rated_amount, coalesce(l.amount, 0)
               + coalesce((SELECT sum(c.delta) FROM billing.corrections c
                           WHERE c.invoice_id = r.invoice_id AND c.line_id = r.line_id
                             AND c.status <> 'rejected'), 0) AS covered
        FROM billing.issued_line_ratings r
        LEFT JOIN billing.invoice_lines l USING (invoice_id, line_id)
        WHERE r.rated_amount <> covered""")
    assert uncovered == []


def test_graduated_late_events_cross_a_tier_boundary(books):
    # 95 calls: 2.00 (tier 1 fee) + 95 x 0.10 = 11.50
    books = issued_books(books, GRADUATED, "graduated", calls("jan", 95))
    lines = issued_lines(books)
    assert lines["api_calls"][1] == Decimal("11.50")
    books.land("late", calls("late", 10), now=LATE_LANDED)
    books.rate(MONTH, now=CORRECTION_RUN)
    # 105 calls: 2.00 + 100 x 0.10 (tier 1) + 1.00 (tier 2 reached: its fee) + 5 x 0.05
    # = 13.25; delta 13.25 - 11.50 = +1.75 (not 10 x 0.10 = 1.00)
    assert corrections(books) == [
        ("api_calls", lines["api_calls"][0], Decimal("11.50"), Decimal("13.25"),
         Decimal("1.75"), "supplementary_invoice", "approved")]
    assert credit_notes(books) == []
    assert supplementary_invoices(books) == [
        (None, "draft", Decimal("1.75"), [("api_calls", Decimal("1.75"))])]
    assert_correction_run(books, issued_total=Decimal("11.50"))
    books.rate(MONTH, now=DOCUMENTS_RUN)
    assert supplementary_invoices(books) == [
        ("INV-202602-00002", "issued", Decimal("1.75"), [("api_calls", Decimal("1.75"))])]


@pytest.mark.parametrize(("users", "health", "before", "after", "delta", "document"), [
    # 90 + 40 = 130 calls: volume tier 2, 130 x 0.08 = 10.40; fixed, 90 calls: tier 1,
    # 90 x 0.10 = 9.00; delta 9.00 - 10.40 = -1.40 on a credit note
    (90, 40, "10.40", "9.00", "-1.40", "credit_note"),
    # 95 + 10 = 105 calls: tier 2, 105 x 0.08 = 8.40; fixed, 95 calls: tier 1, 95 x 0.10 =
    # 9.50; fewer calls cost more: delta 9.50 - 8.40 = +1.10 on a supplementary invoice
    (95, 10, "8.40", "9.50", "1.10", "supplementary_invoice"),
])
def test_volume_meter_fix_drops_the_whole_quantity_to_another_tier(
        books, users, health, before, after, delta, document):
    january = calls("users", users) + calls("health", health, endpoint="/health")
    books = issued_books(books, VOLUME, "volume", january)
    lines = issued_lines(books)
    assert lines["api_calls"][1] == Decimal(before)
    # the meter is fixed: health checks are not billable calls
    books.write_catalog(meters=FIXED_METERS)
    books.rate(MONTH, now=CORRECTION_RUN)
    assert corrections(books) == [
        ("api_calls", lines["api_calls"][0], Decimal(before), Decimal(after), Decimal(delta),
         document, "approved")]
    amount = Decimal(delta)
    if document == "credit_note":
        assert credit_notes(books) == [(None, "draft", -amount, [("api_calls", amount)])]
        assert supplementary_invoices(books) == []
    else:
        assert credit_notes(books) == []
        assert supplementary_invoices(books) == [(None, "draft", amount, [("api_calls", amount)])]
    assert_correction_run(books, issued_total=Decimal(before))


def test_volume_price_fix_moves_the_whole_quantity_to_another_tier(books):
    # 130 calls: tier 2 (101-1000), 130 x 0.08 = 10.40
    books = issued_books(books, VOLUME, "volume", calls("jan", 130))
    lines = issued_lines(books)
    # the price is fixed: the first tier runs to 150 calls, so 130 calls are all priced at
    # tier 1: 130 x 0.10 = 13.00; delta 13.00 - 10.40 = +2.60
    books.write_catalog(plans=VOLUME.replace("{up_to: 100, ", "{up_to: 150, "))
    books.rate(MONTH, now=CORRECTION_RUN)
    assert corrections(books) == [
        ("api_calls", lines["api_calls"][0], Decimal("10.40"), Decimal("13.00"),
         Decimal("2.60"), "supplementary_invoice", "approved")]
    assert supplementary_invoices(books) == [
        (None, "draft", Decimal("2.60"), [("api_calls", Decimal("2.60"))])]
    assert_correction_run(books, issued_total=Decimal("10.40"))


def test_package_one_late_event_adds_a_whole_package(books):
    # 220 exports, 20 included: 200 billable = 2 packages of 100 x 5.00 = 10.00
    books = issued_books(books, PACKAGE, "package", exports("jan", 220))
    lines = issued_lines(books)
    assert lines["exports"][1] == Decimal("10.00")
    books.land("late", exports("late", 1), now=LATE_LANDED)
    books.rate(MONTH, now=CORRECTION_RUN)
    # 221 exports: 201 billable, a third package started: 3 x 5.00 = 15.00; delta +5.00
    assert corrections(books) == [
        ("exports", lines["exports"][0], Decimal("10.00"), Decimal("15.00"), Decimal("5.00"),
         "supplementary_invoice", "approved")]
    assert supplementary_invoices(books) == [
        (None, "draft", Decimal("5.00"), [("exports", Decimal("5.00"))])]
    assert_correction_run(books, issued_total=Decimal("10.00"))
    books.rate(MONTH, now=DOCUMENTS_RUN)
    assert supplementary_invoices(books)[0][:3] == ("INV-202602-00002", "issued",
                                                    Decimal("5.00"))


def test_minimum_commitment_crossed_gives_a_supplementary_invoice_and_a_credit_note(books):
    # 300 calls x 0.10 = 30.00, short of the 50.00 commitment: top-up 20.00; total 50.00
    books = issued_books(books, COMMITTED, "committed", calls("jan", 300))
    lines = issued_lines(books)
    assert {k: v[1] for k, v in lines.items()} == {"api_calls": Decimal("30.00"),
                                                   "minimum_commitment": Decimal("20.00")}
    books.land("late", calls("late", 250), now=LATE_LANDED)
    books.rate(MONTH, now=CORRECTION_RUN)
    # 550 calls x 0.10 = 55.00, above the commitment: no top-up any more (rated 0).
    # api_calls 30.00 -> 55.00: +25.00; top-up 20.00 -> 0: -20.00; net +5.00 = 55.00 - 50.00
    assert corrections(books) == [
        ("api_calls", lines["api_calls"][0], Decimal("30.00"), Decimal("55.00"),
         Decimal("25.00"), "supplementary_invoice", "approved"),
        ("minimum_commitment", lines["minimum_commitment"][0], Decimal("20.00"), Decimal("0"),
         Decimal("-20.00"), "credit_note", "approved")]
    assert supplementary_invoices(books) == [
        (None, "draft", Decimal("25.00"), [("api_calls", Decimal("25.00"))])]
    assert credit_notes(books) == [
        (None, "draft", Decimal("20.00"), [("minimum_commitment", Decimal("-20.00"))])]
    assert_correction_run(books, issued_total=Decimal("50.00"))
    books.rate(MONTH, now=DOCUMENTS_RUN)
    assert [n[:3] for n in credit_notes(books)] == [
        ("CN-202602-00001", "issued", Decimal("20.00"))]
    assert [s[:3] for s in supplementary_invoices(books)] == [
        ("INV-202602-00002", "issued", Decimal("25.00"))]


def test_percentage_discount_line_is_corrected_by_its_own_delta(books):
    # 2,000 calls x 0.01 = 20.00; 15% off = 3.00; total 17.00
    books = issued_books(books, PER_CALL, "per_call", calls("jan", 2000),
                         extra=FIFTEEN_PERCENT_OFF)
    lines = issued_lines(books)
    assert {k: v[1] for k, v in lines.items()} == {"api_calls": Decimal("20.00"),
                                                   "discount_0": Decimal("-3.00")}
    books.land("late", calls("late", 333), now=LATE_LANDED)
    books.rate(MONTH, now=CORRECTION_RUN)
    # 2,333 calls x 0.01 = 23.33: +3.33; 15% of 23.33 = 3.4995, rounded half away from zero
    # to 3.50: the discount line -3.00 -> -3.50, a decrease of -0.50 (credited); net +2.83
    assert corrections(books) == [
        ("api_calls", lines["api_calls"][0], Decimal("20.00"), Decimal("23.33"),
         Decimal("3.33"), "supplementary_invoice", "approved"),
        ("discount_0", lines["discount_0"][0], Decimal("-3.00"), Decimal("-3.50"),
         Decimal("-0.50"), "credit_note", "approved")]
    assert supplementary_invoices(books) == [
        (None, "draft", Decimal("3.33"), [("api_calls", Decimal("3.33"))])]
    assert credit_notes(books) == [
        (None, "draft", Decimal("0.50"), [("discount_0", Decimal("-0.50"))])]
    assert_correction_run(books, issued_total=Decimal("17.00"))


# Documents voided, and credits beyond what remains creditable (docs/corrections.md, "Voided
# correcting documents and credits beyond the invoice"). The per-call plan at 0.01: 100 calls in
# January, an invoice of 1.00.
VOID_AT = datetime(2026, 2, 2, 3, 0, tzinfo=UTC)          # a document voided
RERUN = datetime(2026, 2, 2, 4, 0, tzinfo=UTC)            # the next billing run
RERUN_DOCUMENTS = datetime(2026, 2, 2, 5, 30, tzinfo=UTC)  # its documents' grace period over
PRICE_FIX_RUN = datetime(2026, 2, 2, 6, 0, tzinfo=UTC)


def fix_price(books: Books, unit_price: str) -> None:
    """The per-call price fixed in the catalog after issue."""
    books.write_catalog(plans=PER_CALL.replace('unit_price: "0.01"',
                                               f'unit_price: "{unit_price}"'))


def void(books: Books, invoice_id: str, reason: str) -> int:
    """`billing invoice void ID --reason ... --actor finance:ana`; returns the corrections
    withdrawn."""
    with books.connection() as con, transaction(con):
        return void_invoice(con, invoice_id, reason=reason, actor="finance:ana",
                            now=VOID_AT).withdrawn_corrections


def void_at_stripe(books: Books, credit_note_id: str, cause: str) -> None:
    """A credit note voided at Stripe, as the sync applies `credit_note.voided`."""
    with books.connection() as con, transaction(con):
        void_credit_notes(con, {credit_note_id: cause}, actor="stripe_events", now=VOID_AT)


def goodwill(books: Books, amount: str, *, now: datetime = LATE_LANDED) -> Decimal:
    """`billing credit-note create --invoice INV-202602-00001 --amount ...`; returns what
    remains creditable after it."""
    with books.connection() as con, transaction(con):
        return create_manual_credit_note(
            con, books.catalog(), "INV-202602-00001", amount, reason="goodwill: outage",
            actor="finance:ana", now=now).remaining_after


def coverage_check_passes(books: Books) -> bool:
    """The blocking check `corrections_cover_rerating` of the month."""
    with books.connection() as con:
        return corrections_cover(con, MONTH).passed


def decisions(books: Books) -> list[tuple]:
    """(revision, covered, rated, delta, status, decided_by, reason) per correction."""
    return books.rows("""SELECT revision, covered_amount, rated_amount, delta, status,
                                decided_by, reason
                         FROM billing.corrections ORDER BY detected_at, revision""")


def credit_movements(books: Books) -> list[tuple[Decimal, str | None]]:
    """(amount, correction) per credit balance movement, in order."""
    return books.rows("""SELECT amount, correction_id FROM billing.customer_credit_movements
                         ORDER BY created_at, amount DESC""")


def decrease(correction_id: str, delta: str) -> LineDelta:
    return LineDelta(correction_id=correction_id, invoice_id="inv", line_id=correction_id,
                     description="line", delta=Decimal(delta), covered=Decimal(0),
                     rated=Decimal(0))


@pytest.mark.parametrize(("remaining", "expected"), [
    # room for all: everything on the credit note
    ("5.00", [("a", "1.50", "0"), ("b", "0.75", "0")]),
    # 2.00 left: a takes 1.50, b the 0.50 left, its other 0.25 to the credit balance
    ("2.00", [("a", "1.50", "0"), ("b", "0.50", "0.25")]),
    # 1.00 left: a takes it all, its other 0.50 and the whole of b to the credit balance
    ("1.00", [("a", "1.00", "0.50"), ("b", "0", "0.75")]),
    # nothing left (a goodwill note credited the whole invoice): no credit note at all
    ("0.00", [("a", "0", "1.50"), ("b", "0", "0.75")]),
])
def test_split_credit_takes_what_remains_creditable_in_line_order(remaining, expected):
    splits = split_credit([decrease("a", "-1.50"), decrease("b", "-0.75")], Decimal(remaining))
    assert splits == [CreditSplit(cid, Decimal(credited), Decimal(beyond))
                      for cid, credited, beyond in expected]
    assert sum(s.credited for s in splits) == min(Decimal("2.25"), Decimal(remaining))


def test_split_credit_refuses_an_increase():
    with pytest.raises(ValueError, match="not a decrease"):
        split_credit([decrease("a", "0.10")], Decimal("1.00"))


def test_voided_supplementary_invoice_no_longer_bills_its_correction(books):
    books = issued_books(books, PER_CALL, "per_call", calls("jan", 100))
    books.land("late", calls("late", 50), now=LATE_LANDED)
    books.rate(MONTH, now=CORRECTION_RUN)
    books.rate(MONTH, now=DOCUMENTS_RUN)
    # 150 calls x 0.01 = 1.50: +0.50 on INV-202602-00002, issued
    [(first, _, _)] = books.rows("SELECT correction_id, document_id, status "
                                 "FROM billing.corrections")
    assert [s[:3] for s in supplementary_invoices(books)] == [
        ("INV-202602-00002", "issued", Decimal("0.50"))]
    (supplementary,), = books.rows("SELECT invoice_id FROM billing.invoices "
                                   "WHERE invoice_number = 'INV-202602-00002'")
    assert void(books, supplementary, "sent by mistake") == 1
    # the correction it carried is withdrawn, and says why and by whom; the history keeps both
    # decisions; until the next run the late usage is not covered (the blocking check fails)
    assert decisions(books) == [
        (0, Decimal("1.00"), Decimal("1.50"), Decimal("0.50"), "rejected", "finance:ana",
         "supplementary invoice INV-202602-00002 voided: sent by mistake")]
    assert books.rows("""SELECT from_status, to_status, changed_at, actor, reason
                         FROM billing.correction_history WHERE correction_id = $id
                         ORDER BY changed_at, to_status DESC""", {"id": first})[1:] == [
        ("pending_approval", "approved", CORRECTION_RUN, "auto_approve",
         "within auto_approve_corrections_up_to 100.00"),
        ("approved", "rejected", VOID_AT, "finance:ana",
         "supplementary invoice INV-202602-00002 voided: sent by mistake")]
    assert not coverage_check_passes(books)
    # the next run proposes the +0.50 again (revision 1: another id), on a new invoice
    books.rate(MONTH, now=RERUN)
    assert decisions(books)[1] == (1, Decimal("1.00"), Decimal("1.50"), Decimal("0.50"),
                                   "approved", "auto_approve", None)
    assert coverage_check_passes(books)
    books.rate(MONTH, now=RERUN_DOCUMENTS)
    assert sorted(s[:3] for s in supplementary_invoices(books)) == [
        ("INV-202602-00002", "voided", Decimal("0.50")),
        ("INV-202602-00003", "issued", Decimal("0.50"))]
    # a later price fix is measured against what is billed: 1.00 + 0.50, not the voided 0.50
    # too. 150 x 0.008 = 1.20: -0.30 credited
    fix_price(books, "0.008")
    books.rate(MONTH, now=PRICE_FIX_RUN)
    assert decisions(books)[2] == (2, Decimal("1.50"), Decimal("1.20"), Decimal("-0.30"),
                                   "approved", "auto_approve", None)
    assert [n[2:] for n in credit_notes(books)] == [(Decimal("0.30"),
                                                     [("api_calls", Decimal("-0.30"))])]
    assert coverage_check_passes(books)


def test_credit_note_voided_at_stripe_no_longer_credits_its_correction(books):
    books = issued_books(books, PER_CALL, "per_call", calls("jan", 100))
    fix_price(books, "0.008")
    books.rate(MONTH, now=CORRECTION_RUN)
    books.rate(MONTH, now=DOCUMENTS_RUN)
    # 100 x 0.008 = 0.80: -0.20 on CN-202602-00001, issued
    [(note_id, number, status, total)] = books.rows(
        "SELECT credit_note_id, credit_note_number, status, total FROM billing.credit_notes")
    assert (number, status, total) == ("CN-202602-00001", "issued", Decimal("0.20"))
    void_at_stripe(books, note_id, "stripe credit_note.voided evt_1")
    assert decisions(books) == [
        (0, Decimal("1.00"), Decimal("0.80"), Decimal("-0.20"), "rejected", "stripe_events",
         "credit note CN-202602-00001 voided: stripe credit_note.voided evt_1")]
    assert not coverage_check_passes(books)
    books.rate(MONTH, now=RERUN)
    # proposed again, credited again (the voided note no longer takes up the invoice)
    assert decisions(books)[1] == (1, Decimal("1.00"), Decimal("0.80"), Decimal("-0.20"),
                                   "approved", "auto_approve", None)
    assert sorted(n[1:3] for n in credit_notes(books)) == [("draft", Decimal("0.20")),
                                                           ("voided", Decimal("0.20"))]
    assert coverage_check_passes(books)


def test_correction_credit_beyond_what_remains_creditable_goes_to_the_credit_balance(books):
    books = issued_books(books, PER_CALL, "per_call", calls("jan", 100))
    # a 1.00 goodwill credit note leaves nothing creditable on the 1.00 invoice
    assert goodwill(books, "1.00") == Decimal("0.00")
    # price fixed: 100 x 0.0025 = 0.25, a decrease of 0.75 that no credit note can carry
    fix_price(books, "0.0025")
    books.rate(MONTH, now=CORRECTION_RUN)
    [(correction_id, delta, status, document_id)] = books.rows(
        "SELECT correction_id, delta, status, document_id FROM billing.corrections")
    assert (delta, status) == (Decimal("-0.75"), "approved")
    assert books.rows("SELECT kind, total FROM billing.credit_notes") == [
        ("manual", Decimal("1.00"))]
    assert credit_movements(books) == [(Decimal("0.75"), correction_id)]
    (movement_id,), = books.rows("SELECT movement_id FROM billing.customer_credit_movements")
    assert document_id == movement_id
    assert books.rows("SELECT balance FROM billing.customer_credit_balances") == [
        (Decimal("0.75"),)]
    assert coverage_check_passes(books)
    # the same rating again changes nothing
    books.rate(MONTH, now=DOCUMENTS_RUN)
    assert credit_movements(books) == [(Decimal("0.75"), correction_id)]


def test_correction_credit_note_is_capped_and_the_rest_follows_the_credit_note(books):
    books = issued_books(books, PER_CALL, "per_call", calls("jan", 100))
    assert goodwill(books, "0.40") == Decimal("0.60")
    fix_price(books, "0.0025")
    books.rate(MONTH, now=CORRECTION_RUN)
    books.rate(MONTH, now=DOCUMENTS_RUN)
    # -0.75: 0.60 on the credit note (all that remains), 0.15 to the customer's credit balance
    [(correction_id, document_id)] = books.rows(
        "SELECT correction_id, document_id FROM billing.corrections")
    assert books.rows("""SELECT credit_note_id, credit_note_number, status, total
                         FROM billing.credit_notes WHERE kind = 'correction'""") == [
        (document_id, "CN-202602-00002", "issued", Decimal("0.60"))]
    assert books.rows("""SELECT correction_id, amount FROM billing.credit_note_lines
                         WHERE credit_note_id = $id""", {"id": document_id}) == [
        (correction_id, Decimal("-0.60"))]
    assert credit_movements(books) == [(Decimal("0.15"), correction_id)]
    assert coverage_check_passes(books)
    # nothing remains creditable: a goodwill credit of 0.01 is refused
    with pytest.raises(ManualDocumentError, match=re.escape(
            "remains creditable on invoice INV-202602-00001: 0.00 USD")):
        goodwill(books, "0.01", now=DOCUMENTS_RUN)
    # Stripe voids the capped note: its correction is withdrawn with its balance part, then
    # proposed and split again (0.60 creditable again)
    void_at_stripe(books, document_id, "stripe credit_note.voided evt_2")
    assert credit_movements(books) == [(Decimal("0.15"), correction_id),
                                       (Decimal("-0.15"), correction_id)]
    books.rate(MONTH, now=RERUN)
    [(second, second_document)] = books.rows(
        "SELECT correction_id, document_id FROM billing.corrections WHERE revision = 1")
    assert books.rows("""SELECT status, total FROM billing.credit_notes
                         WHERE credit_note_id = $id""", {"id": second_document}) == [
        ("draft", Decimal("0.60"))]
    assert credit_movements(books)[2:] == [(Decimal("0.15"), second)]
    assert books.rows("SELECT balance FROM billing.customer_credit_balances") == [
        (Decimal("0.15"),)]
    assert coverage_check_passes(books)
