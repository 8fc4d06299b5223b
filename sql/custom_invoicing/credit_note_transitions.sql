-- Custom invoicing credit notes moved on (temp frame credit_note_transitions_frame: one row per
-- transition, `step` giving their order): the transitions appended to
-- billing.credit_note_status_history, each credit note set to the last state it reached, and
-- those reaching `issued` stamped and, unless the integration gave its own number, numbered
-- CN-YYYYMM-NNNNN, gap-free per billing month in the sequence every app's credit notes share
-- (order within a month: invoice, credit note id). Parameter: $now.
INSERT INTO billing.credit_note_status_history
    (credit_note_id, from_status, to_status, changed_at, cause, actor)
SELECT credit_note_id, from_status, to_status, changed_at, cause, actor
FROM credit_note_transitions_frame
ORDER BY step;

UPDATE billing.credit_notes AS c
SET status = t.status,
    status_changed_at = $now,
    issued_at = CASE WHEN t.status = 'issued' THEN coalesce(c.issued_at, $now)
                     ELSE c.issued_at END
FROM (SELECT credit_note_id, arg_max(to_status, step) AS status
      FROM credit_note_transitions_frame GROUP BY credit_note_id) t
WHERE c.credit_note_id = t.credit_note_id;

CREATE OR REPLACE TEMP TABLE credit_notes_numbered AS
SELECT
    c.credit_note_id,
    c.billing_month,
    coalesce(s.last_number, 0)
        + row_number() OVER (PARTITION BY c.billing_month
                             ORDER BY c.invoice_id, c.credit_note_id) AS sequence
FROM billing.credit_notes c
LEFT JOIN billing.credit_note_number_sequences s USING (billing_month)
WHERE c.status = 'issued' AND c.credit_note_number IS NULL
  AND c.credit_note_id IN (SELECT credit_note_id FROM credit_note_transitions_frame
                           WHERE to_status = 'issued');

UPDATE billing.credit_notes AS c
SET credit_note_number = printf('CN-%s-%05d', replace(n.billing_month, '-', ''), n.sequence)
FROM credit_notes_numbered n
WHERE c.credit_note_id = n.credit_note_id;

INSERT OR REPLACE INTO billing.credit_note_number_sequences (billing_month, last_number)
SELECT billing_month, max(sequence) FROM credit_notes_numbered GROUP BY billing_month;

DROP TABLE credit_notes_numbered;
