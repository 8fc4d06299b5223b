-- Replace a provider's invoice snapshot with the fetched one (temp frame provider_invoices_frame)
-- and note when it was taken. Parameters: $provider, $snapshot_at.
DELETE FROM sync.provider_invoices WHERE provider = $provider;
INSERT INTO sync.provider_invoices
    (provider, external_id, invoice_id, external_customer_id, number, status, currency, total,
     amount_paid, amount_remaining, amount_refunded, line_count, lines, snapshot_at)
SELECT provider, external_id, invoice_id, external_customer_id, number, status, currency, total,
       amount_paid, amount_remaining, amount_refunded, line_count, CAST(lines AS JSON),
       snapshot_at
FROM provider_invoices_frame;
INSERT OR REPLACE INTO sync.provider_snapshots (provider, snapshot_at, invoices)
SELECT $provider, $snapshot_at, count(*)
FROM provider_invoices_frame;
