-- A manual (goodwill) credit note against an issued invoice, made by a person with
-- `billing credit-note create`: one line that corrects no line in particular, carrying the
-- negative amount; total is the amount credited (positive). A draft until issued like the
-- correction credit notes (app none: numbered after the grace period; provider apps: by their
-- sync). The caller checked the amount against what remains creditable.
-- Parameters: $credit_note_id, $invoice_id, $amount, $reason, $now, $issue_after, $actor.
INSERT INTO billing.credit_notes (
    credit_note_id, credit_note_number, invoice_id, customer_id, billing_month, currency, total,
    status, reason, kind, billing_profile, app, issue_after, created_at, created_by, issued_at,
    status_changed_at
)
SELECT $credit_note_id, NULL, i.invoice_id, i.customer_id, i.billing_month, i.currency,
       $amount, 'draft', $reason, 'manual', i.billing_profile, i.app, $issue_after, $now,
       $actor, NULL, $now
FROM billing.invoices i
WHERE i.invoice_id = $invoice_id;

INSERT INTO billing.credit_note_lines (
    credit_note_line_id, credit_note_id, corrects_line_id, correction_id, amount, description,
    position
)
VALUES ('cnl_' || left(sha256($credit_note_id || '|manual'), 24), $credit_note_id, NULL, NULL,
        -CAST($amount AS DECIMAL(38, 12)), 'Credit: ' || $reason, 0);

INSERT INTO billing.credit_note_status_history
    (credit_note_id, from_status, to_status, changed_at, cause, actor)
VALUES ($credit_note_id, NULL, 'draft', $now, 'manual credit: ' || $reason, $actor);
