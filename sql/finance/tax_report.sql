-- finance.tax_report_lines and finance.tax_report: tax per period x jurisdiction x rate x
-- currency (docs/tax.md). Rebuilt whole. Parameter: $now.
-- A period is the UTC month a document counts in: an invoice in the month it was issued, a
-- credit note (negative lines) in the month it was issued. A voided invoice or credit note
-- (after its issue) is taken back in the month of the void, so a period once reported does not
-- change. Drafts count nowhere. The jurisdiction and rate are the invoice's (a credit note: the
-- credited invoice's). taxable_amount is net of tax: the line amount less an inclusive tax.
DELETE FROM finance.tax_report_lines;

INSERT INTO finance.tax_report_lines
WITH documents AS (
    -- invoices issued, and their voids
    SELECT 'invoice' AS document_type, i.invoice_id AS document_id, i.invoice_id,
           strftime(i.issued_at AT TIME ZONE 'UTC', '%Y-%m') AS period, 1 AS sign
    FROM billing.invoices i
    WHERE i.issued_at IS NOT NULL
    UNION ALL
    SELECT 'invoice_void', i.invoice_id, i.invoice_id,
           strftime(coalesce(i.status_changed_at, i.issued_at) AT TIME ZONE 'UTC', '%Y-%m'), -1
    FROM billing.invoices i
    WHERE i.issued_at IS NOT NULL AND i.status = 'voided'
),
credit_documents AS (
    SELECT 'credit_note' AS document_type, c.credit_note_id AS document_id, c.invoice_id,
           strftime(c.issued_at AT TIME ZONE 'UTC', '%Y-%m') AS period, 1 AS sign
    FROM billing.credit_notes c
    WHERE c.issued_at IS NOT NULL
    UNION ALL
    SELECT 'credit_note_void', c.credit_note_id, c.invoice_id,
           strftime(coalesce(c.status_changed_at, c.issued_at) AT TIME ZONE 'UTC', '%Y-%m'), -1
    FROM billing.credit_notes c
    WHERE c.issued_at IS NOT NULL AND c.status = 'voided'
),
lines AS (
    SELECT d.period, d.document_type, d.document_id, l.line_id, d.invoice_id, d.sign,
           l.amount, coalesce(l.tax_amount, 0) AS tax_amount,
           coalesce(l.tax_inclusive, false) AS tax_inclusive
    FROM documents d
    JOIN billing.invoice_lines l ON l.invoice_id = d.document_id
    UNION ALL
    SELECT d.period, d.document_type, d.document_id, l.credit_note_line_id, d.invoice_id, d.sign,
           l.amount, coalesce(l.tax_amount, 0), coalesce(l.tax_inclusive, false)
    FROM credit_documents d
    JOIN billing.credit_note_lines l ON l.credit_note_id = d.document_id
)
SELECT l.period, l.document_type, l.document_id, l.line_id, l.invoice_id, i.customer_id,
       i.tax_country, i.tax_region, i.tax_rate_key, i.tax_rate_percent, l.tax_inclusive,
       i.currency, l.sign, l.amount, l.tax_amount,
       l.sign * (l.amount - CASE WHEN l.tax_inclusive THEN l.tax_amount ELSE 0 END),
       l.sign * l.tax_amount
FROM lines l
JOIN billing.invoices i ON i.invoice_id = l.invoice_id;

DELETE FROM finance.tax_report;

INSERT INTO finance.tax_report
SELECT period, country, region, tax_rate_key, tax_rate_percent, tax_inclusive, currency,
       sum(taxable_amount), sum(tax),
       CAST(count(DISTINCT document_id) FILTER (WHERE document_type LIKE 'invoice%') AS INTEGER),
       CAST(count(DISTINCT document_id) FILTER (WHERE document_type LIKE 'credit_note%')
            AS INTEGER),
       $now
FROM finance.tax_report_lines
GROUP BY period, country, region, tax_rate_key, tax_rate_percent, tax_inclusive, currency
ORDER BY period, country NULLS LAST, region NULLS FIRST, tax_rate_key NULLS LAST, currency;
