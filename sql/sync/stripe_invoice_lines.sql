-- The lines of the invoices being synced (temp table sync_candidates), in invoice order.
SELECT l.invoice_id, l.line_id, l.line_type, l.description, l.amount,
       l.period_start, l.period_end, l.corrects_line_id
FROM billing.invoice_lines l
JOIN sync_candidates c ON c.invoice_id = l.invoice_id
ORDER BY l.invoice_id, l.position, l.line_id
