-- The corrections of the month's invoices per currency (never summed across currencies): how many
-- were detected and how they were decided, the approved increases and decreases, and what the
-- correcting documents of the month bill or credit once issued: supplementary invoices (issued,
-- see invoice_is_issued) and credit notes (issued, not voided; manual ones included).
-- Parameter: $month (YYYY-MM, the corrected invoices' billing month).
WITH corrections AS (
    SELECT currency,
           count(*) AS corrections,
           count(*) FILTER (WHERE status = 'approved') AS approved,
           count(*) FILTER (WHERE status = 'pending_approval') AS pending,
           count(*) FILTER (WHERE status = 'rejected') AS rejected,
           coalesce(sum(delta) FILTER (WHERE status = 'approved' AND delta > 0), 0) AS increases,
           coalesce(sum(delta) FILTER (WHERE status = 'approved' AND delta < 0), 0) AS decreases
    FROM billing.corrections
    WHERE billing_month = $month
    GROUP BY currency
),
supplementary AS (
    SELECT currency, coalesce(sum(total) FILTER (WHERE invoice_is_issued(status)), 0)
               AS supplementary_issued
    FROM billing.invoices
    WHERE billing_month = $month AND corrects_invoice_id IS NOT NULL
    GROUP BY currency
),
credited AS (
    SELECT currency, coalesce(sum(total) FILTER (WHERE issued_at IS NOT NULL
                                                   AND status <> 'voided'), 0) AS credited
    FROM billing.credit_notes
    WHERE billing_month = $month
    GROUP BY currency
)
SELECT currency,
       coalesce(c.corrections, 0) AS corrections, coalesce(c.approved, 0) AS approved,
       coalesce(c.pending, 0) AS pending, coalesce(c.rejected, 0) AS rejected,
       coalesce(c.increases, 0) AS increases, coalesce(c.decreases, 0) AS decreases,
       coalesce(s.supplementary_issued, 0) AS supplementary_issued,
       coalesce(n.credited, 0) AS credited
FROM corrections c
FULL JOIN supplementary s USING (currency)
FULL JOIN credited n USING (currency)
ORDER BY currency;
