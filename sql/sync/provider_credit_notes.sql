-- Replace a provider's credit note snapshot with the fetched one (temp frame
-- provider_credit_notes_frame). Parameter: $provider.
DELETE FROM sync.provider_credit_notes WHERE provider = $provider;
INSERT INTO sync.provider_credit_notes
    (provider, external_id, credit_note_id, external_invoice_id, invoice_id, number, status,
     currency, total, line_count, lines, snapshot_at)
SELECT provider, external_id, credit_note_id, external_invoice_id, invoice_id, number, status,
       currency, total, line_count, CAST(lines AS JSON), snapshot_at
FROM provider_credit_notes_frame;
