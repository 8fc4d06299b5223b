-- finance.credit_note_reconciliation: every ledger credit note meant for a provider against that
-- provider's latest view of its credit notes (sync.provider_credit_notes: Stripe's credit notes,
-- the custom invoicing integration's statement), plus the provider's credit notes the ledger does
-- not know. Rebuilt whole. Parameter: $now. Reads temp table currency_digits and macro
-- money_text (pipelines.warehouse.register_currency_digits).
--
-- Meant for a provider: credit notes whose app is `stripe` or `custom_invoicing` once they left
-- `draft` (a draft the provider already holds counts too), except a credit note voided before it
-- was ever issued that the provider does not hold (it was never sent). The provider's copies of
-- one credit note of ours are grouped by the credit_note_id its metadata carries; the primary
-- copy is the one our sync mapped (sync.external_ids, object_type 'credit_note'), else the
-- lowest provider id. Findings, most serious first:
--   pending_sync          the ledger has not finished handing it over (draft, draft.*,
--                         issuing*), or the provider has never reported (no
--                         sync.provider_snapshots row)
--   missing_in_provider   the provider's view does not have it
--   duplicate_in_provider the provider has it more than once
--   amount_mismatch       the credited total (or its currency) differs
--   invoice_mismatch      the provider credits another invoice than the ledger's
--   status_mismatch       voided on one side only (the provider says void/voided and the
--                         ledger does not, or the other way round). The ledger voids a credit
--                         note only once the provider has (a credit_note.voided event), so unlike
--                         an invoice there is no void of ours on its way to the provider.
-- and, for provider credit notes: orphan_in_provider (it names a credit note the ledger does not
-- know for that provider, or none of ours: no credit note id, or, at Stripe, one of ours the sync
-- issued as another Stripe credit note). Amounts are positive on both sides: the credited
-- total including tax (billing.credit_notes.total_including_tax, as `ledger_total`, with its
-- tax in `ledger_tax_total`; the provider's total in major units, which includes the tax it
-- credits, as Stripe's credit note total does).
DELETE FROM finance.credit_note_reconciliation;

INSERT INTO finance.credit_note_reconciliation BY NAME
WITH ledger AS (
    SELECT n.credit_note_id, n.app AS provider, n.invoice_id, n.customer_id, n.billing_month,
           n.credit_note_number, n.kind, n.currency,
           coalesce(n.total_including_tax, n.total) AS total,
           coalesce(n.tax_total, 0) AS tax_total, n.status,
           n.status = 'voided' AS voided,
           n.status = 'draft' OR starts_with(n.status, 'draft.')
               OR starts_with(n.status, 'issuing') AS handing_over,
           n.issued_at,
           coalesce(n.status_changed_at, n.issued_at, n.created_at) AS since,
           coalesce(p.sync_sla_seconds, 86400) / 3600.0 AS sla_hours,
           (SELECT count(*) FROM billing.credit_note_lines l
            WHERE l.credit_note_id = n.credit_note_id) AS ledger_lines
    FROM billing.credit_notes n
    LEFT JOIN billing.billing_profiles p ON p.profile_key = n.billing_profile
    WHERE n.app IN ('stripe', 'custom_invoicing')
),
invoice_of_external AS (
    -- our invoice behind a provider invoice id, for a credit note that names only the latter
    SELECT provider, external_id, min(internal_id) AS invoice_id
    FROM sync.external_ids WHERE object_type = 'invoice'
    GROUP BY ALL
),
provider_rows AS (
    SELECT c.*,
           coalesce(c.invoice_id, x.invoice_id) AS credited_invoice_id,
           coalesce(c.status IN ('void', 'voided'), false) AS provider_voided,
           CASE WHEN c.external_id = m.external_id THEN '0' ELSE '1' END || c.external_id
               AS preference
    FROM sync.provider_credit_notes c
    LEFT JOIN invoice_of_external x
      ON x.provider = c.provider AND x.external_id = c.external_invoice_id
    LEFT JOIN sync.external_ids m
      ON m.provider = c.provider AND m.object_type = 'credit_note'
     AND m.internal_id = c.credit_note_id
),
held AS (
    -- each (provider, credit note of ours) the provider holds, once, valued by its primary copy
    SELECT provider, credit_note_id,
           count(*) AS copies,
           string_agg(external_id, ',' ORDER BY preference) AS external_ids,
           arg_min(number, preference) AS provider_number,
           arg_min(credited_invoice_id, preference) AS provider_invoice_id,
           arg_min(currency, preference) AS provider_currency,
           arg_min(total, preference) AS provider_total,
           arg_min(status, preference) AS provider_status,
           arg_min(provider_voided, preference) AS provider_voided,
           arg_min(line_count, preference) AS provider_lines,
           max(snapshot_at) AS held_snapshot_at
    FROM provider_rows
    WHERE credit_note_id IS NOT NULL
    GROUP BY provider, credit_note_id
),
expected AS (
    SELECT l.* FROM ledger l
    LEFT JOIN held h USING (provider, credit_note_id)
    WHERE (l.status <> 'draft' OR h.credit_note_id IS NOT NULL)
      AND NOT (l.voided AND l.issued_at IS NULL AND h.credit_note_id IS NULL)
),
compared AS (
    SELECT e.*, h.copies, h.external_ids, h.provider_number, h.provider_invoice_id,
           h.provider_currency, h.provider_total, h.provider_status, h.provider_voided,
           h.provider_lines, h.held_snapshot_at,
           s.snapshot_at AS provider_snapshot_at,
           d.digits
    FROM expected e
    LEFT JOIN held h USING (provider, credit_note_id)
    LEFT JOIN sync.provider_snapshots s ON s.provider = e.provider
    LEFT JOIN currency_digits d ON d.currency = e.currency
),
checked AS (
    SELECT *,
           CASE
               WHEN handing_over THEN ['pending_sync']
               WHEN provider_snapshot_at IS NULL THEN ['pending_sync']
               WHEN copies IS NULL THEN ['missing_in_provider']
               ELSE list_filter([
                   CASE WHEN copies > 1 THEN 'duplicate_in_provider' END,
                   CASE WHEN provider_total IS DISTINCT FROM total
                          OR provider_currency IS DISTINCT FROM currency
                        THEN 'amount_mismatch' END,
                   CASE WHEN provider_invoice_id IS NOT NULL
                         AND provider_invoice_id <> invoice_id THEN 'invoice_mismatch' END,
                   CASE WHEN provider_voided <> voided
                        THEN 'status_mismatch' END], lambda x: x IS NOT NULL)
           END AS findings
    FROM compared
)
SELECT credit_note_id, provider, external_ids AS external_id, invoice_id, provider_invoice_id,
       customer_id, billing_month, credit_note_number, provider_number, kind,
       currency AS ledger_currency, provider_currency, total AS ledger_total, provider_total,
       tax_total AS ledger_tax_total,
       status AS ledger_status, provider_status, ledger_lines, provider_lines,
       coalesce(findings[1], 'matched') AS match_status,
       findings,
       CASE coalesce(findings[1], 'matched')
           WHEN 'matched' THEN 'as in the ledger'
           WHEN 'pending_sync' THEN
               CASE WHEN handing_over THEN 'being handed over to ' || provider || ' (' || status
                                           || ')'
                    ELSE 'no snapshot from ' || provider || ' yet' END
           WHEN 'missing_in_provider' THEN provider || ' does not have this ' || status
                                           || ' credit note of invoice ' || invoice_id
           ELSE array_to_string(list_transform(findings, lambda f:
               CASE f
                   WHEN 'duplicate_in_provider' THEN copies || ' copies at ' || provider || ': '
                                                     || external_ids
                   WHEN 'amount_mismatch' THEN 'credited ' || money_text(total, digits) || ' '
                        || currency || CASE WHEN tax_total <> 0
                                            THEN ' (incl. ' || money_text(tax_total, digits)
                                                 || ' tax)' ELSE '' END
                        || ' in the ledger, '
                        || coalesce(money_text(provider_total, digits), '?') || ' '
                        || coalesce(provider_currency, '?') || ' at ' || provider
                   WHEN 'invoice_mismatch' THEN 'credits invoice ' || provider_invoice_id
                        || ' at ' || provider || ', invoice ' || invoice_id || ' in the ledger'
                   WHEN 'status_mismatch' THEN 'status ' || coalesce(provider_status, '?')
                        || ' at ' || provider || ', ledger ' || status
               END), '; ')
       END AS detail,
       since,
       date_diff('second', since, $now) / 3600.0 AS age_hours,
       sla_hours,
       coalesce(findings[1], 'matched') <> 'matched'
           AND date_diff('second', since, $now) / 3600.0 > sla_hours AS sla_breached,
       coalesce(held_snapshot_at, provider_snapshot_at) AS snapshot_at,
       $now AS reconciled_at
FROM checked

UNION ALL BY NAME

-- provider credit notes the ledger does not know for that provider
SELECT p.credit_note_id, p.provider, p.external_id, p.credited_invoice_id AS provider_invoice_id,
       p.number AS provider_number, p.currency AS provider_currency, p.total AS provider_total,
       p.status AS provider_status, p.line_count AS provider_lines,
       'orphan_in_provider' AS match_status, ['orphan_in_provider'] AS findings,
       CASE WHEN p.credit_note_id IS NULL
            THEN p.provider || ' credit note ' || p.external_id
                 || coalesce(' of invoice ' || p.credited_invoice_id, '')
                 || ' is not one of our credit notes: none was issued as it'
            ELSE p.provider || ' credit note ' || p.external_id || ' claims credit note '
                 || p.credit_note_id || ', which the ledger does not have for ' || p.provider
       END AS detail,
       true AS sla_breached,  -- a credit nobody asked for has no grace period
       p.snapshot_at, $now AS reconciled_at
FROM provider_rows p
WHERE NOT EXISTS (SELECT 1 FROM ledger l
                  WHERE l.credit_note_id = p.credit_note_id AND l.provider = p.provider);
