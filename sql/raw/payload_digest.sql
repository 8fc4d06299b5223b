-- What "the same payload" means for dedup (contract section 1): every field but the identity,
-- properties as minified JSON. A 64-bit digest from DuckDB's hash(), cheap enough to compute for
-- every event (md5 cost 4 µs per event, most of ingestion's time). hash() is not promised
-- stable across DuckDB releases, so the warehouse keeps the digest of a fixed probe
-- (raw.payload_digest_scheme) and re-digests every stored event when it changes
-- (pipelines/warehouse.py: _redigest_if_scheme_changed). Two payloads with the same digest and
-- different content would be taken for a duplicate: for 64 bits, about one chance in 10^19.
CREATE OR REPLACE TEMP MACRO payload_digest(event_name, customer_id, subscription_id, ts,
                                            properties) AS
    hash(event_name, customer_id, coalesce(subscription_id, chr(30)), epoch_us(ts),
         CAST(properties AS VARCHAR))::UHUGEINT;

CREATE OR REPLACE TEMP MACRO payload_digest_probe() AS
    payload_digest('probe.event', 'probe-customer', NULL, TIMESTAMPTZ '2026-01-01 00:00:00+00',
                   '{"probe":1}'::JSON);
