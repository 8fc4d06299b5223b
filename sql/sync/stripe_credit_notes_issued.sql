-- Stripe's number of the credit notes it issued (temp frame stripe_credit_notes_issued_frame),
-- beside our CN-YYYYMM-NNNNN given at the same time; the sync error is cleared.
UPDATE billing.credit_notes AS n
SET external_credit_note_number = f.number,
    sync_error = NULL
FROM stripe_credit_notes_issued_frame f
WHERE n.credit_note_id = f.credit_note_id
