-- Corrections of profiles with `corrections: next_invoice` (contract section 9) as `correction`
-- lines on the subscription's next invoice: the earliest draft of the same subscription (and
-- currency) cut after the corrected invoice. A correction with no such draft yet waits for it.
-- Each line carries the correction's delta and points at the corrected invoice and line.
-- Drafts are re-rated in place at every run (sql/billing/invoice_lines.sql replaces their lines),
-- so the correction lines of every draft are rebuilt here from billing.corrections, the one
-- record of which correction is on which invoice. Parameters: none.

-- A correction whose invoice is gone (a draft the catalog no longer produces) or voided is no
-- longer billed there: it goes back to waiting. So does one still on a draft whose corrected
-- invoice was voided meanwhile (it then waits for nothing: a voided invoice is not corrected).
UPDATE billing.corrections AS c SET document_id = NULL
WHERE c.document_type = 'next_invoice'
  AND c.document_id IS NOT NULL
  AND (NOT EXISTS (SELECT 1 FROM billing.invoices i
                   WHERE i.invoice_id = c.document_id AND i.status <> 'voided')
       OR (EXISTS (SELECT 1 FROM billing.invoices i
                   WHERE i.invoice_id = c.document_id AND i.status = 'draft')
           AND EXISTS (SELECT 1 FROM billing.invoices i
                       WHERE i.invoice_id = c.invoice_id AND i.status = 'voided')));

-- Each approved correction that waits goes on the earliest draft of its subscription cut after
-- the invoice it corrects (supplementary invoices are never a "next invoice").
UPDATE billing.corrections AS c SET document_id = t.next_invoice_id
FROM (
    SELECT w.correction_id,
           first(n.invoice_id ORDER BY n.boundary, n.invoice_id) AS next_invoice_id
    FROM billing.corrections w
    JOIN billing.invoices corrected ON corrected.invoice_id = w.invoice_id
    JOIN billing.invoices n
      ON n.subscription_id = corrected.subscription_id
     AND n.currency = corrected.currency
     AND n.boundary > corrected.boundary
     AND n.status = 'draft'
     AND n.corrects_invoice_id IS NULL
    WHERE w.document_type = 'next_invoice'
      AND w.status = 'approved'
      AND w.document_id IS NULL
      AND corrected.status <> 'voided'
    GROUP BY w.correction_id
) t
WHERE c.correction_id = t.correction_id;

-- The correction lines of every draft, rebuilt: after its other lines, in the order of the
-- corrected invoices and lines.
DELETE FROM billing.invoice_lines
WHERE line_type = 'correction'
  AND invoice_id IN (SELECT invoice_id FROM billing.invoices
                     WHERE status = 'draft' AND corrects_invoice_id IS NULL);

INSERT INTO billing.invoice_lines (
    line_id, invoice_id, line_type, price_key, meter_key, description, quantity, unit_price,
    amount, period_start, period_end, tiers, position, corrects_line_id, corrects_invoice_id,
    correction_id
)
SELECT
    'line_' || left(sha256(c.document_id || '|' || c.correction_id), 24),
    c.document_id,
    'correction',
    coalesce(c.price_key, 'correction'),
    c.meter_key,
    'Correction of ' || coalesce(corrected.invoice_number, corrected.invoice_id) || ': '
        || c.description,
    NULL, NULL,
    c.delta,
    coalesce(c.period_start, corrected.period_start),
    coalesce(c.period_end, corrected.period_end),
    NULL,
    CAST(coalesce(base.next_position, 0)
         + row_number() OVER (PARTITION BY c.document_id
                              ORDER BY corrected.boundary, c.invoice_id, c.line_id, c.revision)
         - 1 AS INTEGER),
    c.line_id,
    c.invoice_id,
    c.correction_id
FROM billing.corrections c
JOIN billing.invoices d
  ON d.invoice_id = c.document_id AND d.status = 'draft' AND d.corrects_invoice_id IS NULL
JOIN billing.invoices corrected ON corrected.invoice_id = c.invoice_id
LEFT JOIN (SELECT invoice_id, max(position) + 1 AS next_position
           FROM billing.invoice_lines
           WHERE line_type NOT IN ('correction', 'credit_balance')
           GROUP BY invoice_id) base ON base.invoice_id = c.document_id
WHERE c.document_type = 'next_invoice'
  AND c.status = 'approved';
