-- Every line of the re-rated invoices that are past draft (issued, or on their way), with what
-- the ledger knows of it: the issued amount, the corrections that cover it so far, and the latest
-- rating (0 where the rating no longer produces the line; a line only the rating produces has
-- issued amount 0). Voided invoices are not corrected. Reads temp tables `draft_invoices`,
-- `draft_lines`; runs before the drafts are written.
WITH frozen AS (
    SELECT i.invoice_id, i.customer_id, i.subscription_id, i.billing_month, i.currency,
           i.billing_profile
    FROM billing.invoices i
    JOIN draft_invoices d USING (invoice_id)
    WHERE i.status NOT IN ('draft', 'draft.syncing', 'draft.sync_failed', 'voided')
),
issued AS (
    SELECT l.* FROM billing.invoice_lines l WHERE l.invoice_id IN (SELECT invoice_id FROM frozen)
),
rated AS (
    SELECT l.* FROM draft_lines l WHERE l.invoice_id IN (SELECT invoice_id FROM frozen)
),
corrected AS (
    -- what covers the line (billing.correction_standing: not rejected, its document not
    -- voided); revision counts every correction of the line, rejected and withdrawn ones too, so
    -- that a new one never takes an earlier one's id; `rejected` lists the (covered, rated)
    -- amounts declined (a correction withdrawn with its voided document is proposed again)
    SELECT invoice_id, line_id,
           coalesce(sum(delta) FILTER (WHERE covers), 0) AS corrected,
           count(*) AS revision,
           coalesce(list({'covered': covered_amount, 'rated': rated_amount})
                    FILTER (WHERE declined), []) AS rejected
    FROM billing.correction_standing
    GROUP BY ALL
)
SELECT
    f.invoice_id,
    coalesce(i.line_id, r.line_id) AS line_id,
    coalesce(i.description, r.description) AS description,
    coalesce(i.amount, 0)::DECIMAL(38, 12) AS issued,
    coalesce(c.corrected, 0)::DECIMAL(38, 12) AS corrected,
    coalesce(r.amount, 0)::DECIMAL(38, 12) AS rated,
    coalesce(c.revision, 0)::INTEGER AS revision,
    coalesce(c.rejected, []) AS rejected,
    f.customer_id, f.subscription_id, f.billing_month, f.currency, f.billing_profile,
    coalesce(i.line_type, r.line_type) AS line_type,
    coalesce(i.price_key, r.price_key) AS price_key,
    coalesce(i.meter_key, r.meter_key) AS meter_key,
    coalesce(i.period_start, r.period_start) AS period_start,
    coalesce(i.period_end, r.period_end) AS period_end
FROM issued i
FULL JOIN rated r ON r.line_id = i.line_id AND r.invoice_id = i.invoice_id
JOIN frozen f ON f.invoice_id = coalesce(i.invoice_id, r.invoice_id)
LEFT JOIN corrected c
  ON c.invoice_id = f.invoice_id AND c.line_id = coalesce(i.line_id, r.line_id)
WHERE coalesce(i.line_type, r.line_type) NOT IN ('adjustment', 'correction', 'credit_balance')
ORDER BY f.invoice_id, coalesce(i.position, r.position + 100000), line_id
