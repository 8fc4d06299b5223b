-- Custom invoicing credit notes moved on (temp frame credit_note_transitions_frame: one row per
-- transition, `step` giving their order): the transitions appended to
-- billing.credit_note_status_history, each credit note set to the last state it reached, and
-- those reaching `issued` stamped (the caller then numbers those without the integration's
-- number with billing/credit_note_numbers, the numbering every app shares). Parameter: $now.
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
