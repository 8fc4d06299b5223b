-- Whether an invoice status counts as issued revenue for the finance report: every status after
-- issue (issued, payment_processing.*, paid, overdue, uncollectible, refunded, ...), not a
-- draft (draft, draft.*), not one still being issued (issuing, issuing.*), not voided, and not a
-- discarded draft. A temp macro, created per report session.
CREATE OR REPLACE TEMP MACRO invoice_is_issued(status) AS
    status NOT IN ('draft', 'voided', 'discarded')
    AND NOT starts_with(status, 'draft.')
    AND NOT starts_with(status, 'issuing');
