-- Writes the tax computed for untaxed lines (frame line_tax_frame: kind, id, rate and tax),
-- then brings each document's tax_total and total_including_tax up to date: only documents
-- whose sums changed are written. A credit note's totals are positive, its lines negative.
UPDATE billing.invoice_lines AS l
SET tax_rate_key = t.tax_rate_key, tax_rate_percent = t.tax_rate_percent,
    tax_inclusive = t.tax_inclusive, tax_amount = t.tax_amount
FROM line_tax_frame t
WHERE t.kind = 'invoice_line' AND l.line_id = t.id;

UPDATE billing.credit_note_lines AS l
SET tax_rate_key = t.tax_rate_key, tax_rate_percent = t.tax_rate_percent,
    tax_inclusive = t.tax_inclusive, tax_amount = t.tax_amount
FROM line_tax_frame t
WHERE t.kind = 'credit_note_line' AND l.credit_note_line_id = t.id;

UPDATE billing.invoices AS i
SET tax_total = t.tax_total, total_including_tax = i.total + t.exclusive_tax
FROM (
    SELECT i.invoice_id,
           coalesce(sum(l.tax_amount), 0) AS tax_total,
           coalesce(sum(l.tax_amount) FILTER (WHERE NOT l.tax_inclusive), 0) AS exclusive_tax
    FROM billing.invoices i
    LEFT JOIN billing.invoice_lines l USING (invoice_id)
    GROUP BY i.invoice_id
) t
WHERE i.invoice_id = t.invoice_id
  AND (i.tax_total IS DISTINCT FROM t.tax_total
       OR i.total_including_tax IS DISTINCT FROM i.total + t.exclusive_tax);

UPDATE billing.credit_notes AS c
SET tax_total = t.tax_total, total_including_tax = c.total + t.exclusive_tax
FROM (
    SELECT c.credit_note_id,
           -coalesce(sum(l.tax_amount), 0) AS tax_total,
           -coalesce(sum(l.tax_amount) FILTER (WHERE NOT l.tax_inclusive), 0) AS exclusive_tax
    FROM billing.credit_notes c
    LEFT JOIN billing.credit_note_lines l USING (credit_note_id)
    GROUP BY c.credit_note_id
) t
WHERE c.credit_note_id = t.credit_note_id
  AND (c.tax_total IS DISTINCT FROM t.tax_total
       OR c.total_including_tax IS DISTINCT FROM c.total + t.exclusive_tax);
