"""Accounting (contract section 10): the chart of accounts applied to the ledger's facts, the
double-entry journal (`finance.journal_entries`, `finance.journal_lines`) and revenue
recognition (`finance.revenue_schedule`). Pure rules in `recognition` and `posting`; the
warehouse side in `journal`; the checks in `checks`. See docs/accounting.md."""
