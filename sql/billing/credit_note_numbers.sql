-- Give CN-YYYYMM-NNNNN numbers, gap-free per billing month, to the issued credit notes listed in
-- temp table `numbering` that have none yet (a custom invoicing integration may have supplied
-- its own). Order within a month: invoice, credit note id. The one numbering of every app's
-- credit notes, in the sequence they share: app none after the grace period (billing run), app
-- stripe once Stripe has the note (Stripe sync), app custom_invoicing once the note reaches
-- `issued` through its hooks.
CREATE OR REPLACE TEMP TABLE numbered_credit_notes AS
SELECT
    c.credit_note_id,
    c.billing_month,
    coalesce(s.last_number, 0)
        + row_number() OVER (PARTITION BY c.billing_month
                             ORDER BY c.invoice_id, c.credit_note_id) AS sequence
FROM billing.credit_notes c
JOIN numbering n USING (credit_note_id)
LEFT JOIN billing.credit_note_number_sequences s USING (billing_month)
WHERE c.credit_note_number IS NULL AND c.status = 'issued';

UPDATE billing.credit_notes AS c
SET credit_note_number = printf('CN-%s-%05d', replace(n.billing_month, '-', ''), n.sequence)
FROM numbered_credit_notes n
WHERE c.credit_note_id = n.credit_note_id;

INSERT OR REPLACE INTO billing.credit_note_number_sequences (billing_month, last_number)
SELECT billing_month, max(sequence) FROM numbered_credit_notes GROUP BY billing_month;

DROP TABLE numbered_credit_notes;
