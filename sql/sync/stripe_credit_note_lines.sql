-- The lines of the credit notes being synced (temp table sync_credit_note_candidates), with
-- what Stripe knows of the line each corrects: its Stripe invoice line item (mapped when the
-- invoice was issued), its amount there, and what earlier credit notes of the invoice took off
-- it (issued ones, and those synced before this one in the same run; voided ones gave it
-- back), so the sync credits a Stripe line item never beyond what it has left. Each line's tax
-- (negative like its amount) goes to Stripe as the line's tax_amounts.
SELECT
    l.credit_note_id,
    l.credit_note_line_id,
    l.corrects_line_id,
    l.amount,
    l.description,
    l.tax_rate_key,
    l.tax_rate_percent,
    coalesce(l.tax_inclusive, false) AS tax_inclusive,
    coalesce(l.tax_amount, 0) AS tax_amount,
    xl.external_id AS stripe_line_item,
    il.amount AS line_amount,
    coalesce((
        SELECT sum(-e.amount)
        FROM billing.credit_note_lines e
        JOIN billing.credit_notes en ON en.credit_note_id = e.credit_note_id
        WHERE e.corrects_line_id = l.corrects_line_id
          AND en.invoice_id = n.invoice_id
          AND en.app = 'stripe'
          AND en.credit_note_id <> n.credit_note_id
          AND (en.status = 'issued'
               OR (en.credit_note_id IN (SELECT credit_note_id FROM sync_credit_note_candidates)
                   AND (en.created_at < n.created_at
                        OR (en.created_at = n.created_at
                            AND en.credit_note_id < n.credit_note_id))))
    ), 0) AS credited_before
FROM billing.credit_note_lines l
JOIN sync_credit_note_candidates c ON c.credit_note_id = l.credit_note_id
JOIN billing.credit_notes n ON n.credit_note_id = l.credit_note_id
LEFT JOIN billing.invoice_lines il
    ON il.line_id = l.corrects_line_id AND il.invoice_id = n.invoice_id
LEFT JOIN sync.external_ids xl
    ON xl.provider = 'stripe' AND xl.object_type = 'line' AND xl.internal_id = l.corrects_line_id
ORDER BY l.credit_note_id, l.position, l.credit_note_line_id
