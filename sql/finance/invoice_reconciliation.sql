-- finance.invoice_reconciliation: every ledger invoice meant for a provider against that
-- provider's latest snapshot (sync.provider_invoices, through temp view provider_held of
-- sql/finance/provider_held.sql), plus the provider's invoices the ledger
-- does not know. Rebuilt whole. Parameter: $now. Reads temp table currency_digits and macro
-- money_text (pipelines.warehouse.register_currency_digits).
--
-- Meant for a provider: invoices whose app is `stripe` or `custom_invoicing` once they left
-- `draft` (a draft the provider already holds counts too), except zero-total Stripe invoices the
-- provider does not hold (they are settled without being sent). Findings, most serious first:
--   pending_sync          the ledger has not finished handing it over (draft.*, issuing*),
--                         the provider has never been asked (no snapshot yet), or the ledger
--                         voided it after the provider's snapshot or less than the profile's
--                         sync SLA ago and nothing else differs (the void is on its way)
--   missing_in_provider   the provider's snapshot does not have it
--   duplicate_in_provider the provider has it more than once
--   currency_mismatch, amount_mismatch (the total including tax: what the customer owes, as a
--   provider's total includes the tax it bills), line_mismatch (a line missing, extra, of
--   another tax when the provider gives its lines' tax, or of
--   another amount, by our line id), status_mismatch (the provider's status is not the one the
--   ledger status implies: open / paid / void / uncollectible)
-- and, for provider invoices: orphan_in_provider (it names an invoice the ledger does not know
-- for that provider, or none of ours: no invoice id, or, at Stripe, one of ours the sync issued
-- as another Stripe invoice: pipelines/providers/stripe_sync/ownership.py). A supplementary
-- invoice (corrects_invoice_id, contract section 9) is an ordinary invoice here; credit notes
-- are reconciled in finance.credit_note_reconciliation. `ledger_total` is the ledger's
-- total_including_tax (billing.invoices.total plus an exclusive tax; docs/tax.md), the number
-- the provider's `total` must equal; `ledger_tax_total` the tax in it. Lines are compared by
-- their amounts, before an exclusive tax, as providers show lines.
DELETE FROM finance.invoice_reconciliation;

INSERT INTO finance.invoice_reconciliation
WITH ledger AS (
    SELECT i.invoice_id, i.app AS provider, i.customer_id, i.billing_month,
           i.invoice_number, i.currency,
           coalesce(i.total_including_tax, i.total) AS total,
           coalesce(i.tax_total, 0) AS tax_total,
           i.status,
           CASE
               WHEN i.status IN ('issued', 'payment_processing.pending',
                                 'payment_processing.failed',
                                 'payment_processing.action_required', 'overdue') THEN 'open'
               WHEN i.status IN ('paid', 'refunded', 'partially_refunded') THEN 'paid'
               WHEN i.status = 'voided' THEN 'void'
               WHEN i.status = 'uncollectible' THEN 'uncollectible'
           END AS expected_status,
           i.status = 'draft' OR starts_with(i.status, 'draft.')
               OR starts_with(i.status, 'issuing') AS handing_over,
           coalesce(i.status_changed_at, i.issued_at, i.created_at) AS since,
           coalesce(p.sync_sla_seconds, 86400) / 3600.0 AS sla_hours
    FROM billing.invoices i
    LEFT JOIN billing.billing_profiles p ON p.profile_key = i.billing_profile
    WHERE i.app IN ('stripe', 'custom_invoicing')
),
provider_rows AS (
    SELECT * FROM sync.provider_invoices WHERE invoice_id IS NOT NULL
),
held AS (
    SELECT * FROM provider_held
),
expected AS (
    SELECT l.* FROM ledger l
    LEFT JOIN held h USING (provider, invoice_id)
    WHERE (l.status <> 'draft' OR h.invoice_id IS NOT NULL)
      AND NOT (l.provider = 'stripe' AND l.total = 0 AND h.invoice_id IS NULL)
),
ledger_lines AS (
    SELECT e.provider, l.invoice_id, l.line_id, l.amount, coalesce(l.tax_amount, 0) AS tax_amount
    FROM billing.invoice_lines l JOIN expected e USING (invoice_id)
),
provider_lines AS (
    -- the lines of the primary copy of each held invoice, by our line id
    SELECT h.provider, h.invoice_id, pl.line->>'line_id' AS line_id,
           pl.line->>'external_id' AS external_line_id,
           CAST(pl.line->>'amount' AS DECIMAL(38, 12)) AS amount,
           -- the line's tax when the provider gives it (a statement's optional tax_amount)
           CAST(pl.line->>'tax_amount' AS DECIMAL(38, 12)) AS tax_amount
    FROM held h
    JOIN provider_rows p ON p.provider = h.provider AND p.external_id = h.external_id,
         LATERAL (SELECT unnest(CAST(p.lines AS JSON[])) AS line) pl
),
line_diffs AS (
    SELECT coalesce(l.provider, p.provider) AS provider,
           coalesce(l.invoice_id, p.invoice_id) AS invoice_id,
           string_agg(
               CASE
                   WHEN p.invoice_id IS NULL THEN l.line_id || ' missing at the provider'
                   WHEN l.invoice_id IS NULL THEN 'provider line '
                        || coalesce(p.external_line_id, '?') || ' ('
                        || coalesce(p.line_id, 'no line id') || ') not in the ledger'
                   WHEN l.amount <> p.amount
                   THEN l.line_id || ': ledger ' || money_text(l.amount, d.digits)
                        || ', provider ' || money_text(p.amount, d.digits)
                   ELSE l.line_id || ': tax ' || money_text(l.tax_amount, d.digits)
                        || ' in the ledger, ' || money_text(p.tax_amount, d.digits)
                        || ' at the provider'
               END, '; ' ORDER BY coalesce(l.line_id, p.line_id, p.external_line_id))
               AS differences
    FROM ledger_lines l
    FULL OUTER JOIN provider_lines p
        ON p.provider = l.provider AND p.invoice_id = l.invoice_id AND p.line_id = l.line_id
    LEFT JOIN billing.invoices i ON i.invoice_id = coalesce(l.invoice_id, p.invoice_id)
    LEFT JOIN currency_digits d ON d.currency = i.currency
    WHERE l.invoice_id IS NULL OR p.invoice_id IS NULL OR l.amount <> p.amount
       OR p.tax_amount <> l.tax_amount
    GROUP BY ALL
),
compared AS (
    SELECT e.*, h.copies, h.external_ids, h.currency AS provider_currency,
           h.total AS provider_total, h.status AS provider_status,
           h.line_count AS provider_lines, h.snapshot_at AS held_snapshot_at,
           s.snapshot_at AS provider_snapshot_at,
           (SELECT count(*) FROM billing.invoice_lines x
            WHERE x.invoice_id = e.invoice_id) AS ledger_lines,
           ld.differences AS line_differences,
           d.digits,
           -- the ledger voided it and the provider cannot have been told yet
           e.status = 'voided' AND h.status IS DISTINCT FROM 'void'
               AND (s.snapshot_at < e.since
                    OR date_diff('second', e.since, $now) / 3600.0 <= e.sla_hours)
               AS void_on_its_way
    FROM expected e
    LEFT JOIN held h USING (provider, invoice_id)
    LEFT JOIN sync.provider_snapshots s ON s.provider = e.provider
    LEFT JOIN line_diffs ld USING (provider, invoice_id)
    LEFT JOIN currency_digits d ON d.currency = e.currency
),
checked AS (
    SELECT *,
           CASE
               WHEN handing_over THEN ['pending_sync']
               WHEN provider_snapshot_at IS NULL THEN ['pending_sync']
               WHEN copies IS NULL AND void_on_its_way THEN ['pending_sync']
               WHEN copies IS NULL THEN ['missing_in_provider']
               ELSE list_filter([
                   CASE WHEN copies > 1 THEN 'duplicate_in_provider' END,
                   CASE WHEN provider_currency IS DISTINCT FROM currency
                        THEN 'currency_mismatch' END,
                   CASE WHEN provider_total IS DISTINCT FROM total THEN 'amount_mismatch' END,
                   CASE WHEN line_differences IS NOT NULL THEN 'line_mismatch' END,
                   CASE WHEN provider_status IS DISTINCT FROM expected_status
                         AND NOT void_on_its_way
                        THEN 'status_mismatch' END], lambda x: x IS NOT NULL)
           END AS found
    FROM compared
),
judged AS (
    -- nothing else wrong with an invoice whose void is on its way: it is being handed over
    SELECT *,
           CASE WHEN len(found) = 0 AND void_on_its_way THEN ['pending_sync'] ELSE found END
               AS findings
    FROM checked
)
SELECT invoice_id, provider, external_ids, customer_id, billing_month, invoice_number,
       currency, provider_currency, total, provider_total, status, provider_status,
       expected_status, ledger_lines, provider_lines, line_differences,
       coalesce(findings[1], 'matched') AS match_status,
       findings,
       CASE coalesce(findings[1], 'matched')
           WHEN 'matched' THEN 'as in the ledger'
           WHEN 'pending_sync' THEN
               CASE WHEN handing_over THEN 'being handed over to ' || provider || ' (' || status
                                           || ')'
                    WHEN provider_snapshot_at IS NULL
                        THEN 'no snapshot from ' || provider || ' yet'
                    ELSE 'voided in the ledger at '
                         || strftime(since AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M UTC')
                         || '; ' || provider || ' has not been told yet' END
           WHEN 'missing_in_provider' THEN provider || ' does not have this ' || status
                                           || ' invoice'
           ELSE array_to_string(list_transform(findings, lambda f:
               CASE f
                   WHEN 'duplicate_in_provider' THEN copies || ' copies at ' || provider || ': '
                                                     || external_ids
                   WHEN 'currency_mismatch' THEN 'currency ' || currency || ' in the ledger, '
                                                 || coalesce(provider_currency, '?') || ' at '
                                                 || provider
                   WHEN 'amount_mismatch' THEN 'total ' || money_text(total, digits)
                                               || CASE WHEN tax_total <> 0
                                                       THEN ' (incl. ' || money_text(tax_total,
                                                            digits) || ' tax)' ELSE '' END
                                               || ' in the ledger, '
                                               || coalesce(money_text(provider_total, digits), '?')
                                               || ' at ' || provider
                   WHEN 'line_mismatch' THEN 'lines: ' || line_differences
                   WHEN 'status_mismatch' THEN 'status ' || coalesce(provider_status, '?')
                                               || ' at ' || provider || ', '
                                               || coalesce(expected_status, 'none')
                                               || ' expected for ledger ' || status
               END), '; ')
       END AS detail,
       since,
       date_diff('second', since, $now) / 3600.0 AS age_hours,
       sla_hours,
       coalesce(findings[1], 'matched') <> 'matched'
           AND date_diff('second', since, $now) / 3600.0 > sla_hours AS sla_breached,
       coalesce(held_snapshot_at, provider_snapshot_at) AS snapshot_at,
       $now AS reconciled_at,
       tax_total AS ledger_tax_total
FROM judged

UNION ALL

-- provider invoices the ledger does not know for that provider
SELECT p.invoice_id, p.provider, p.external_id, NULL, NULL, p.number,
       NULL, p.currency, NULL, p.total, NULL, p.status, NULL, NULL, p.line_count, NULL,
       'orphan_in_provider', ['orphan_in_provider'],
       CASE WHEN p.invoice_id IS NULL
            THEN p.provider || ' invoice ' || p.external_id
                 || ' is not one of our invoices: none was issued as it'
            ELSE p.provider || ' invoice ' || p.external_id || ' claims invoice ' || p.invoice_id
                 || ', which the ledger does not have for ' || p.provider END,
       NULL, NULL, NULL,
       true,  -- an invoice nobody asked for has no grace period
       p.snapshot_at, $now, NULL
FROM sync.provider_invoices p
WHERE NOT EXISTS (SELECT 1 FROM ledger l
                  WHERE l.invoice_id = p.invoice_id AND l.provider = p.provider);
