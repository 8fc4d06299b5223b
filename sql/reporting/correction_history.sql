-- Who decided what on the month's corrections: every status change of a correction of an invoice
-- of the billing month (proposed by the billing run, approved automatically within the
-- profile's auto_approve_corrections_up_to, or approved / rejected by a person), oldest first.
-- Parameter: $month.
SELECT h.changed_at, h.correction_id, c.invoice_id, i.invoice_number, h.from_status,
       h.to_status, h.actor, h.reason
FROM billing.correction_history h
JOIN billing.corrections c USING (correction_id)
LEFT JOIN billing.invoices i ON i.invoice_id = c.invoice_id
WHERE c.billing_month = $month
ORDER BY h.changed_at, h.correction_id,
         CASE h.to_status WHEN 'pending_approval' THEN 0 ELSE 1 END;
