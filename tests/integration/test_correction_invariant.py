"""The corrections invariant over random histories (contract section 9, issue 13): after any
sequence of late events, price fixes, billing re-runs at later "now"s and approvals or rejections,
for every line of every issued invoice

    issued amount + every correction not rejected = the amount of the latest rating, exactly,

unless a person rejected exactly that difference (the line's covered and rated amounts are those
of a rejected correction). Besides: re-running the same step creates nothing, every approved
correction is on exactly one document line (credit note or supplementary invoice) carrying its
delta, document ids are unique and invoice / credit note numbers are gap-free per month.

Driven through the production billing steps without Dagster (tests/support/books.py), one DuckDB
file per example; the invariant is read with this file's own SQL, not the blocking check's."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pipelines.invoicing.corrections import CorrectionError
from pipelines.invoicing.month_cuts import draft_invoices, due_cuts
from pipelines.invoicing.usage_measurement import stored_usage
from tests.support.books import Books
from tests.support.landing import event

MONTH = "2026-02"
JAN_LANDED = datetime(2026, 1, 31, 23, 0, tzinfo=UTC)
ISSUE_RUN = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)
JANUARY = date(2026, 1, 1)  # the service period the 2026-02-01 invoices close

METERS = """
meters:
  - {key: api_requests, event_name: api.request, aggregation: count}
  - {key: exports, event_name: report.exported, aggregation: count}
"""
# Small amounts against a 0.50 threshold: some corrections are approved at once, others wait.
CUSTOMERS = """
billing_profiles:
  - {key: manual, default: true, app: none, grace_period: PT1H,
     auto_approve_corrections_up_to: "0.50"}
customers:
  - {id: alpha, name: Alpha}
  - {id: beta, name: Beta}
subscriptions:
  - id: sub_alpha
    customer: alpha
    plan: mixed
    start_date: 2026-01-01
    discounts:
      - {type: percentage, percent: "10", periods: null}
  - {id: sub_beta, customer: beta, plan: volume, start_date: 2026-01-01}
"""
# Every pricing model: graduated with flat fees, package, minimum commitment (and the
# discount above) on `mixed`; volume and per unit with included units on `volume`.
PLANS = """
plans:
  - key: mixed
    name: Mixed
    currency: USD
    billing_period: monthly
    minimum_commitment: "5.00"
    prices:
      - key: api_calls
        meter: api_requests
        type: tiered
        tier_mode: graduated
        tiers:
          - {{up_to: 20, unit_price: "{graduated}", flat_fee: "0.50"}}
          - {{up_to: null, unit_price: "0.05", flat_fee: "0.25"}}
      - {{key: exports, meter: exports, type: package, package_size: 10,
          package_price: "{package}"}}
  - key: volume
    name: Volume
    currency: EUR
    billing_period: monthly
    prices:
      - key: api_calls
        meter: api_requests
        type: tiered
        tier_mode: volume
        tiers:
          - {{up_to: 30, unit_price: "{volume}"}}
          - {{up_to: null, unit_price: "0.07"}}
      - {{key: exports, meter: exports, type: per_unit, unit_price: "0.25",
          included_units: "3"}}
"""
PRICES = {"graduated": ("0.10", "0.12", "0.08"), "package": ("1.00", "1.50", "0.75"),
          "volume": ("0.09", "0.11", "0.06")}
CUSTOMER_IDS = ("alpha", "beta")

PAST_DRAFT = "('draft', 'draft.syncing', 'draft.sync_failed', 'voided')"

# Every line of an original invoice past draft (issued, or a line only a later rating made),
# with its issued amount, the corrections not rejected, and its latest rating (a line never
# re-rated since issue: the rating that issued it).
LINE_ACCOUNTS = f"""
WITH originals AS (
    SELECT invoice_id FROM billing.invoices
    WHERE corrects_invoice_id IS NULL AND status NOT IN {PAST_DRAFT}
), keys AS (
    SELECT invoice_id, line_id FROM billing.invoice_lines
    WHERE invoice_id IN (SELECT invoice_id FROM originals)
    UNION SELECT invoice_id, line_id FROM billing.issued_line_ratings
    UNION SELECT invoice_id, line_id FROM billing.corrections
), corrected AS (
    SELECT invoice_id, line_id, sum(delta) AS corrected
    FROM billing.corrections WHERE status <> 'rejected' GROUP BY ALL
)
SELECT k.invoice_id, k.line_id, coalesce(l.amount, 0) AS issued,
       coalesce(c.corrected, 0) AS corrected,
       coalesce(r.rated_amount, l.amount) AS rated, r.rated_at
FROM keys k
LEFT JOIN billing.invoice_lines l USING (invoice_id, line_id)
LEFT JOIN billing.issued_line_ratings r USING (invoice_id, line_id)
LEFT JOIN corrected c USING (invoice_id, line_id)
ORDER BY k.invoice_id, k.line_id
"""


def snapshot(books: Books) -> dict[str, list[tuple]]:
    """Everything a repeated step must leave as it was."""
    tables = {
        "corrections": "SELECT * FROM billing.corrections ORDER BY correction_id",
        "correction_history": "SELECT count(*) FROM billing.correction_history",
        "credit_notes": "SELECT * FROM billing.credit_notes ORDER BY credit_note_id",
        "credit_note_lines": "SELECT * FROM billing.credit_note_lines "
                             "ORDER BY credit_note_line_id",
        "credit_note_history": "SELECT count(*) FROM billing.credit_note_status_history",
        "invoices": "SELECT invoice_id, invoice_number, status, total FROM billing.invoices "
                    "ORDER BY invoice_id",
        "invoice_lines": "SELECT line_id, invoice_id, amount, correction_id "
                         "FROM billing.invoice_lines ORDER BY line_id",
        "invoice_history": "SELECT count(*) FROM billing.invoice_status_history",
        "events": "SELECT count(*) FROM raw.events",
    }
    return {name: books.rows(text) for name, text in tables.items()}


def uncovered_lines(books: Books, *, after_decision: bool) -> list[tuple]:
    """Lines where issued + corrections not rejected differ from the latest rating and no
    rejection accounts for it: a rejected correction with the line's current covered and rated
    amounts (the person rejected exactly this difference). Right after a decision (before the
    next run) a rejection decided after the line's latest rating may also leave a difference,
    which the next run proposes again (a later correction of the line was stacked on it)."""
    rejected: dict[tuple[str, str], list[tuple[Decimal, Decimal, datetime]]] = defaultdict(list)
    for invoice_id, line_id, covered, rated, decided_at in books.rows("""
            SELECT invoice_id, line_id, covered_amount, rated_amount, decided_at
            FROM billing.corrections WHERE status = 'rejected'"""):
        rejected[(invoice_id, line_id)].append((covered, rated, decided_at))
    bad = []
    for invoice_id, line_id, issued, corrected, rated, rated_at in books.rows(LINE_ACCOUNTS):
        covered = issued + corrected
        if covered == rated:
            continue
        decisions = rejected[(invoice_id, line_id)]
        if any(c == covered and r == rated for c, r, _ in decisions):
            continue
        if after_decision and rated_at is not None and any(at > rated_at
                                                           for _, _, at in decisions):
            continue
        bad.append((invoice_id, line_id, issued, corrected, rated, decisions))
    return bad


def latest_ratings_are_the_catalog_s(books: Books, now: datetime) -> None:
    """The latest rating counted every event accepted so far (late ones too), and
    billing.issued_line_ratings holds what the rating rules give for it now (0 for a line the
    rating no longer produces), for every line of every original invoice past draft."""
    catalog = books.catalog()
    with books.connection() as con:
        usage = stored_usage(con, MONTH)
        drafts = draft_invoices(catalog, due_cuts(catalog, MONTH, now), usage)
    meters = {"api.request": "api_requests", "report.exported": "exports"}
    for customer, event_name, events in books.rows("""
            SELECT customer_id, event_name, count(*) FROM raw.events
            WHERE "timestamp" < TIMESTAMPTZ '2026-02-01 00:00:00+00' GROUP BY ALL"""):
        counted = usage[f"sub_{customer}"][(meters[event_name], JANUARY)]
        assert counted == events, (customer, event_name)
    rated = {(d.invoice_id, line.line_id): line.amount for d in drafts for line in d.lines}
    frozen = {row[0] for row in books.rows(f"""
        SELECT invoice_id FROM billing.invoices
        WHERE corrects_invoice_id IS NULL AND status NOT IN {PAST_DRAFT}""")}
    stored = {(i, line): amount for i, line, amount in books.rows(
        "SELECT invoice_id, line_id, rated_amount FROM billing.issued_line_ratings")}
    expected = {key: amount for key, amount in rated.items() if key[0] in frozen}
    for key in stored.keys() - expected.keys():
        expected[key] = Decimal(0)
    assert stored == expected


def documents_match_corrections(books: Books) -> None:
    """Each approved correction (policy documents) is one line of one document with its delta
    and the line it corrects (a decrease beyond what remains creditable on the invoice: its
    line carries what fits, the customer's credit balance the rest, or only the balance when
    nothing fits); nothing else is on a document; totals add up; no invoice is credited beyond
    its total; ids are unique."""
    on_documents = books.rows("""
        SELECT correction_id, credit_note_id, amount, corrects_line_id
        FROM billing.credit_note_lines WHERE correction_id IS NOT NULL
        UNION ALL
        SELECT correction_id, invoice_id, amount, corrects_line_id
        FROM billing.invoice_lines WHERE correction_id IS NOT NULL""")
    ids = [row[0] for row in on_documents]
    assert len(ids) == len(set(ids)), "a correction on two document lines"
    placed = {row[0]: row[1:] for row in on_documents}
    to_balance = {row[0]: row[1:] for row in books.rows("""
        SELECT correction_id, any_value(movement_id), sum(amount)
        FROM billing.customer_credit_movements WHERE correction_id IS NOT NULL GROUP BY ALL""")}
    for correction_id, line_id, delta, status, kind, document_id in books.rows("""
            SELECT correction_id, line_id, delta, status, document_type, document_id
            FROM billing.corrections"""):
        if status == "approved":
            movement, beyond = to_balance.get(correction_id, (None, Decimal(0)))
            if document_id == movement:  # nothing remained creditable: all on the balance
                assert correction_id not in placed and beyond == -delta, correction_id
            else:
                assert placed.get(correction_id) == (document_id, delta + beyond, line_id), \
                    correction_id
                expected_prefix = "cn_" if kind == "credit_note" else "inv_"
                assert document_id.startswith(expected_prefix)
            assert (delta < 0) == (kind == "credit_note")
        else:
            assert correction_id not in placed and document_id is None, correction_id
    assert books.rows("""
        SELECT n.credit_note_id FROM billing.credit_notes n
        JOIN billing.credit_note_lines l USING (credit_note_id)
        GROUP BY n.credit_note_id, n.total HAVING n.total <> -sum(l.amount) OR n.total <= 0
        UNION ALL
        SELECT i.invoice_id FROM billing.invoices i
        JOIN billing.invoice_lines l USING (invoice_id)
        WHERE i.corrects_invoice_id IS NOT NULL
        GROUP BY i.invoice_id, i.total HAVING i.total <> sum(l.amount) OR i.total <= 0
        UNION ALL
        SELECT invoice_id FROM billing.remaining_creditable
        WHERE credited_by_credit_notes + credited_on_next_invoices > total""") == []
    document_ids = [row[0] for row in books.rows(
        "SELECT credit_note_id FROM billing.credit_notes UNION ALL "
        "SELECT invoice_id FROM billing.invoices")]
    assert len(document_ids) == len(set(document_ids))


def numbers_are_gap_free(books: Books) -> None:
    """Issued credit notes are CN-YYYYMM-00001.. and invoices INV-YYYYMM-00001.. per billing
    month without a gap or a repeat; drafts have no number yet."""
    for table, column, prefix in (("credit_notes", "credit_note_number", "CN"),
                                  ("invoices", "invoice_number", "INV")):
        rows = books.rows(f"SELECT billing_month, {column}, status FROM billing.{table}")
        per_month: dict[str, list[int]] = defaultdict(list)
        for month, number, status in rows:
            if status == "draft":
                assert number is None
                continue
            found = re.fullmatch(rf"{prefix}-(\d{{6}})-(\d{{5}})", number or "")
            assert found and found.group(1) == month.replace("-", ""), number
            per_month[month].append(int(found.group(2)))
        for numbers in per_month.values():
            assert sorted(numbers) == list(range(1, len(numbers) + 1)), (table, numbers)


@cache
def issued_month() -> Path:
    """Books (made once, copied by every example) where January's usage of both customers is
    rated into invoices issued at ISSUE_RUN: alpha 15 calls and 6 exports, beta 25 calls and 2
    exports."""
    books = Books(Path(tempfile.mkdtemp(prefix="corrections_template_")))
    atexit.register(shutil.rmtree, books.root, ignore_errors=True)
    books.write_catalog(meters=METERS, customers=CUSTOMERS,
                        plans=PLANS.format(**{name: v[0] for name, v in PRICES.items()}))
    january = [event(f"base_{c}_{i}", customer=c, ts=f"2026-01-{1 + i:02d}T09:00:00Z")
               for c, n in (("alpha", 15), ("beta", 25)) for i in range(n)]
    january += [event(f"base_x_{c}_{i}", customer=c, name="report.exported",
                      ts="2026-01-10T09:00:00Z", properties={"format": "csv"})
                for c, n in (("alpha", 6), ("beta", 2)) for i in range(n)]
    books.land("january", january, now=JAN_LANDED)
    books.rate(MONTH, now=ISSUE_RUN)
    assert books.rows("SELECT count(*) FROM billing.invoices WHERE status = 'issued'") == [(2,)]
    return books.root


class CorrectionHistories(RuleBasedStateMachine):
    """One billing month of two customers, issued, then corrected at random."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="corrections_")) / "books"
        shutil.copytree(issued_month(), self.folder)
        self.books = Books(self.folder)
        self.session = self.books.session()
        self.session.__enter__()
        self.prices = {name: values[0] for name, values in PRICES.items()}
        self.now = ISSUE_RUN
        self.files = 0
        self.after_decision = False

    def teardown(self) -> None:
        self.session.__exit__(None, None, None)
        shutil.rmtree(self.folder.parent, ignore_errors=True)

    # few distinct batch sizes: equal batches give equal deltas, which stack on one line
    @rule(customer=st.sampled_from(CUSTOMER_IDS), exports=st.booleans(),
          count=st.sampled_from((1, 10, 20)), day=st.integers(1, 31),
          rerun_after=st.booleans())
    def late_events(self, customer: str, exports: bool, count: int, day: int,
                    rerun_after: bool) -> None:
        """Events of the closed January period accepted after the invoice was issued (and,
        half the time, the month re-run at once)."""
        self.now += timedelta(minutes=5)
        self.files += 1
        name = f"late_{self.files}"
        lines = [event(f"{name}_{i}", customer=customer,
                       name="report.exported" if exports else "api.request",
                       ts=f"2026-01-{day:02d}T{i % 24:02d}:30:00Z") for i in range(count)]
        ingested = self.books.land(name, lines, now=self.now)
        assert ingested.totals["accepted"] == count
        before = snapshot(self.books)
        again = self.books.land(name, lines, now=self.now)  # the same file again: nothing
        assert again.ingested == [] and snapshot(self.books) == before
        if rerun_after:
            self.rerun(minutes=30)

    @rule(price=st.sampled_from(sorted(PRICES)), choice=st.integers(0, 2))
    def price_fix(self, price: str, choice: int) -> None:
        """A unit price corrected in the catalog (rated at the next run)."""
        self.prices[price] = PRICES[price][choice]
        self.books.write_catalog(plans=PLANS.format(**self.prices))

    @rule(minutes=st.integers(10, 240))
    def rerun(self, minutes: int) -> None:
        """The month re-rated at a later now; the same run again creates nothing."""
        self.now += timedelta(minutes=minutes)
        self.books.rate(MONTH, now=self.now, run_id=f"run@{self.now:%d%H%M}")
        self.after_decision = False
        latest_ratings_are_the_catalog_s(self.books, self.now)
        before = snapshot(self.books)
        self.books.rate(MONTH, now=self.now, run_id="the same run again")
        assert snapshot(self.books) == before

    def pending(self) -> list[str]:
        return [row[0] for row in self.books.rows(
            "SELECT correction_id FROM billing.corrections WHERE status = 'pending_approval' "
            "ORDER BY detected_at, correction_id")]

    @rule(pick=st.integers(0, 50), approve=st.booleans())
    def decide(self, pick: int, approve: bool) -> None:
        """A person approves or rejects a pending correction (if one waits); deciding it again
        is refused and changes nothing."""
        waiting = self.pending()
        if not waiting:
            return
        correction_id = waiting[pick % len(waiting)]
        self.now += timedelta(minutes=1)
        self.books.decide(correction_id, approve=approve, now=self.now,
                          reason=None if approve else "goodwill")
        self.after_decision = True
        before = snapshot(self.books)
        with pytest.raises(CorrectionError, match="already"):
            self.books.decide(correction_id, approve=approve, now=self.now, reason="again")
        assert snapshot(self.books) == before

    @invariant()
    def issued_plus_corrections_is_the_latest_rating(self) -> None:
        assert uncovered_lines(self.books, after_decision=self.after_decision) == []

    @invariant()
    def documents_are_consistent(self) -> None:
        documents_match_corrections(self.books)
        numbers_are_gap_free(self.books)


CorrectionHistories.TestCase.settings = settings(
    max_examples=25, stateful_step_count=8, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_correction_histories = CorrectionHistories.TestCase


# Histories hypothesis found, kept as they were printed (each broke the invariant before its fix).


def replay(*steps: tuple[str, dict[str, object]]) -> None:
    """Run the steps on a fresh machine, checking the invariants after each like hypothesis."""
    machine = CorrectionHistories()
    try:
        machine.issued_plus_corrections_is_the_latest_rating()
        machine.documents_are_consistent()
        for name, arguments in steps:
            getattr(machine, name)(**arguments)
            machine.issued_plus_corrections_is_the_latest_rating()
            machine.documents_are_consistent()
    finally:
        machine.teardown()


def test_a_rerun_leaves_a_draft_supplementary_invoice_alone():
    # alpha's first tier 0.10 -> 0.12: 15 calls, +0.30 approved at once, a draft supplementary
    # invoice; the same run again wrote a "draft -> discarded" history row for it (which no
    # rating produces) on every re-run: sql/billing/invoice_status_history.sql now skips it
    replay(("price_fix", {"price": "graduated", "choice": 1}), ("rerun", {"minutes": 10}))


def test_rejecting_a_correction_another_was_stacked_on_proposes_the_difference_again():
    # beta's volume line: 25 calls x 0.09 = 2.25 issued. +15 calls: 40 x 0.07 = 2.80, +0.55;
    # +20: 60 x 0.07 = 4.20, +1.40; +20: 80 x 0.07 = 5.60, +1.40 (covered 4.20); all three wait
    # for approval (above 0.50). Rejecting the first +1.40 leaves 2.25 + 0.55 + 1.40 = 4.20
    # covered against 5.60 rated, and the next run's delta (revision 2, 4.20 -> 5.60) had the id
    # of the second +1.40: nothing was proposed, the line stayed 1.40 short and the blocking
    # check failed every later run. Revisions now count rejected corrections too, so +1.40 is
    # proposed again (a person may reject that one as well).
    late = {"customer": "beta", "exports": False, "day": 5, "rerun_after": True}
    replay(("late_events", {**late, "count": 15}), ("late_events", {**late, "count": 20}),
           ("late_events", {**late, "count": 20}),
           ("decide", {"pick": 1, "approve": False}), ("rerun", {"minutes": 30}))
