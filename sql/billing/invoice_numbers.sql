-- Give INV-YYYYMM-NNNNN numbers, gap-free per billing month, to the invoices listed in temp
-- table `numbering` that have none yet (a custom invoicing integration may have supplied its
-- own). Order within a month: boundary, customer, invoice id.
CREATE OR REPLACE TEMP TABLE numbered AS
SELECT
    i.invoice_id,
    i.billing_month,
    coalesce(s.last_number, 0)
        + row_number() OVER (PARTITION BY i.billing_month
                             ORDER BY i.boundary, i.customer_id, i.invoice_id) AS sequence
FROM billing.invoices i
JOIN numbering n USING (invoice_id)
LEFT JOIN billing.invoice_number_sequences s USING (billing_month)
WHERE i.invoice_number IS NULL;

UPDATE billing.invoices AS i
SET invoice_number = printf('INV-%s-%05d', replace(n.billing_month, '-', ''), n.sequence)
FROM numbered n
WHERE i.invoice_id = n.invoice_id;

INSERT OR REPLACE INTO billing.invoice_number_sequences (billing_month, last_number)
SELECT billing_month, max(sequence) FROM numbered GROUP BY billing_month;

DROP TABLE numbered;
