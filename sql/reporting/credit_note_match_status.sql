-- How each ledger credit note came out of the latest reconciliation with its provider
-- (finance.credit_note_reconciliation), for the credit notes listed in the report.
SELECT credit_note_id, provider, match_status, detail
FROM finance.credit_note_reconciliation
WHERE credit_note_id IS NOT NULL AND match_status <> 'orphan_in_provider'
ORDER BY credit_note_id, provider;
