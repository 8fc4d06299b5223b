"""The pure correction rules: deltas against what is covered, deterministic ids, approval and
documents (contract section 9)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pipelines.rating.corrections import (
    LineAccount,
    correction_id,
    group_documents,
    initial_status,
    line_deltas,
)

D = Decimal


def account(line_id: str, issued: str, rated: str, corrected: str = "0",
            invoice_id: str = "inv_1", revision: int = 0) -> LineAccount:
    return LineAccount(invoice_id=invoice_id, line_id=line_id, description=f"line {line_id}",
                       issued=D(issued), corrected=D(corrected), rated=D(rated),
                       revision=revision)


def test_delta_is_rated_minus_issued_and_corrected():
    deltas = line_deltas([account("a", "10.00", "12.50"), account("b", "5.00", "5.00"),
                          account("c", "8.00", "3.00", corrected="-1.00")])
    assert [(d.line_id, d.delta, d.document_type) for d in deltas] == [
        ("a", D("2.50"), "supplementary_invoice"),
        ("c", D("-4.00"), "credit_note"),
    ]


def test_same_rating_gives_same_id_and_written_forms_do_not_matter():
    first = line_deltas([account("a", "10.00", "12.50")])[0]
    again = line_deltas([account("a", "10.0", "12.5")])[0]
    assert first.correction_id == again.correction_id
    # once covered, the same rating asks for nothing more
    assert line_deltas([account("a", "10.00", "12.50", corrected="2.50")]) == []


def test_a_new_rating_gives_a_new_id():
    first = correction_id("inv_1", "a", D("10"), D("12.5"))
    assert correction_id("inv_1", "a", D("10"), D("13")) != first
    assert correction_id("inv_1", "a", D("12.5"), D("10")) != first
    # back and forth: the second swing is another correction, not the first one again
    assert correction_id("inv_1", "a", D("10"), D("12.5"), revision=2) != first


def test_approval_threshold_is_inclusive_and_on_the_size_of_the_delta():
    assert initial_status(D("25.00"), D("25.00")) == "approved"
    assert initial_status(D("-25.00"), D("25.00")) == "approved"
    assert initial_status(D("25.01"), D("25.00")) == "pending_approval"
    assert initial_status(D("0.01"), D("0")) == "pending_approval"


def test_documents_split_decreases_and_increases_per_invoice():
    deltas = line_deltas([account("a", "10.00", "12.50"), account("b", "7.00", "4.00"),
                          account("c", "1.00", "0.00"),
                          account("x", "3.00", "4.00", invoice_id="inv_2")])
    documents = group_documents(deltas)
    assert [(d.invoice_id, d.document_type, d.total, len(d.correction_ids))
            for d in documents] == [
        ("inv_1", "credit_note", D("-4.00"), 2),
        ("inv_1", "supplementary_invoice", D("2.50"), 1),
        ("inv_2", "supplementary_invoice", D("1.00"), 1),
    ]
    assert group_documents(reversed(deltas)) == documents


amounts = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False)


@given(issued=amounts, ratings=st.lists(amounts, min_size=1, max_size=8))
def test_issued_plus_corrections_equals_latest_rating(issued, ratings):
    corrected = D(0)
    seen: set[str] = set()
    for rated in ratings:
        for delta in line_deltas([account("a", str(issued), str(rated),
                                          corrected=str(corrected), revision=len(seen))]):
            assert delta.correction_id not in seen
            seen.add(delta.correction_id)
            corrected += delta.delta
        assert issued + corrected == rated



def test_a_rejected_difference_is_not_proposed_again_until_covered_or_rated_changes():
    # 10.00 issued, rated 12.50: +2.50 (revision 0) rejected by a person
    rejected = ((D("10.00"), D("12.50")),)
    assert line_deltas([replace(account("a", "10.0", "12.5", revision=1),
                                rejected=rejected)]) == []
    # the rating changes: 10.00 -> 13.00 is another difference, proposed
    (again,) = line_deltas([replace(account("a", "10.00", "13.00", revision=1),
                                    rejected=rejected)])
    assert again.delta == D("3.00")


def test_rejecting_a_correction_a_later_one_was_stacked_on_gives_a_new_id():
    # 10.00 issued; +2.00 (10 -> 12, revision 0) and +2.00 (12 -> 14, revision 1) wait; the
    # first is rejected: 12.00 covered again, 14.00 rated. Counting the rejected correction
    # (revision 2) gives the remaining +2.00 an id of its own, not the second one's.
    (second,) = line_deltas([account("a", "10.00", "14.00", corrected="2.00", revision=1)])
    (remaining,) = line_deltas([replace(
        account("a", "10.00", "14.00", corrected="2.00", revision=2),
        rejected=((D("10.00"), D("12.00")),))])
    assert remaining.delta == D("2.00")
    assert remaining.correction_id != second.correction_id
