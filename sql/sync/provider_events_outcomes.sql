-- What applying each event did (temp frame provider_event_outcomes); events with no outcome
-- yet (waiting for their invoice to be issued) keep applied_at NULL and are tried again.
UPDATE sync.provider_events AS e
SET outcome = o.outcome,
    detail = o.detail,
    applied_at = CASE WHEN o.outcome IS NULL THEN NULL ELSE $now END
FROM provider_event_outcomes o
WHERE e.provider = $provider AND e.event_id = o.event_id
