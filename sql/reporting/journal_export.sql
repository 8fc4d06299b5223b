-- `billing export journal --month YYYY-MM`: one row per journal line whose entry is posted in
-- the month (UTC), with its entry, source document, account, debit, credit, currency and
-- customer: what an accounting system imports (docs/accounting.md). Parameter: $month.
SELECT e.posted_at, e.entry_id, l.line_no, e.source_type, e.source_id, e.entry_kind,
       e.reverses_entry_id, e.document_id, e.document_number, e.description, l.account,
       l.debit, l.credit, l.currency, l.customer_id, e.recorded_at
FROM finance.journal_entries e
JOIN finance.journal_lines l USING (entry_id)
WHERE strftime(e.posted_at, '%Y-%m') = $month
ORDER BY e.posted_at, e.entry_id, l.line_no
