-- Record provider mappings (temp frame external_ids_frame); the first mapping of an object wins.
INSERT INTO sync.external_ids (provider, object_type, internal_id, external_id, created_at)
SELECT provider, object_type, internal_id, external_id, created_at FROM external_ids_frame
ON CONFLICT (provider, object_type, internal_id) DO NOTHING
