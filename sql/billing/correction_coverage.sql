-- Every line of the month's invoices past draft beside its latest rating, what was issued, and
-- the corrections that cover it (billing.correction_standing: not rejected, their credit note or
-- supplementary invoice not voided), for the blocking check "issued + corrections = latest
-- rating". A line whose latest delta was declined by a person is covered by that decision; one
-- whose correction was withdrawn with its voided document is not, until a re-run proposes it.
-- Parameter: $billing_month.
SELECT
    r.invoice_id,
    r.line_id,
    any_value(r.rated_amount) AS rated_amount,
    coalesce(any_value(l.amount), 0)::DECIMAL(38, 12) AS issued_amount,
    coalesce(sum(c.delta) FILTER (WHERE c.covers), 0)::DECIMAL(38, 12)
        AS corrected_amount,
    coalesce(bool_or(c.declined AND c.rated_amount = r.rated_amount), false)
        AS rejected_at_this_rating
FROM billing.issued_line_ratings r
JOIN billing.invoices i ON i.invoice_id = r.invoice_id
LEFT JOIN billing.invoice_lines l ON l.invoice_id = r.invoice_id AND l.line_id = r.line_id
LEFT JOIN billing.correction_standing c ON c.invoice_id = r.invoice_id AND c.line_id = r.line_id
WHERE i.billing_month = $billing_month
GROUP BY r.invoice_id, r.line_id
ORDER BY r.invoice_id, r.line_id
