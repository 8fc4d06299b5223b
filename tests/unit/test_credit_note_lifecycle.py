"""The custom invoicing credit note lifecycle: the chain of states a move takes, through the same
hooks as an invoice, never back."""

from __future__ import annotations

import pytest

from pipelines.custom_invoicing.credit_notes import credit_note_path


@pytest.mark.parametrize(("start", "target", "chain"), [
    ("draft", "draft.syncing", ["draft.syncing"]),
    ("draft", "issuing.syncing", ["issuing", "issuing.syncing"]),     # no draft hook
    ("draft", "issued", ["issuing", "issued"]),                       # no hooks at all
    ("draft.syncing", "issuing", ["issuing"]),
    ("draft.syncing", "issued", ["issuing", "issued"]),
    ("issuing.syncing", "issued", ["issued"]),
    ("issued", "issued", []),
    ("issued", "draft", None),                                        # never back
    ("draft.syncing", "draft", None),
    ("issuing.syncing", "issuing", None),
    ("voided", "issued", None),                                       # not a custom state
])
def test_credit_note_path(start: str, target: str, chain: list[str] | None) -> None:
    assert credit_note_path(start, target) == chain
