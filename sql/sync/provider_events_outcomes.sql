-- What applying each event did (temp frame provider_event_outcomes), and our invoice it was
-- resolved to (through the mapping; NULL when the event is about nothing of ours); events
-- with no outcome yet (waiting for their invoice to be issued or mapped) keep applied_at NULL
-- and are tried again.
UPDATE sync.provider_events AS e
SET outcome = o.outcome,
    detail = o.detail,
    invoice_id = o.invoice_id,
    applied_at = CASE WHEN o.outcome IS NULL THEN NULL ELSE $now END
FROM provider_event_outcomes o
WHERE e.provider = $provider AND e.event_id = o.event_id
