-- Append recorded provider calls (temp frame sync_attempts_frame).
INSERT INTO sync.sync_attempts
    (provider, operation, internal_id, idempotency_key, http_status, outcome, latency_ms,
     error, "at", attempt, request_id, run_id)
SELECT provider, operation, internal_id, idempotency_key, http_status, outcome, latency_ms,
       error, "at", attempt, request_id, run_id
FROM sync_attempts_frame
