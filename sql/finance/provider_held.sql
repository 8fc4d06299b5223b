-- Temp view `provider_held`: each (provider, invoice of ours) a provider's latest snapshot holds,
-- once, with how many copies it holds and the values of its primary copy: the one our sync
-- mapped (sync.external_ids), else the lowest provider id. The reconciliation files read it.
CREATE OR REPLACE TEMP VIEW provider_held AS
WITH ranked AS (
    SELECT p.*,
           CASE WHEN p.external_id = x.external_id THEN '0' ELSE '1' END || p.external_id
               AS preference
    FROM sync.provider_invoices p
    LEFT JOIN sync.external_ids x
      ON x.provider = p.provider AND x.object_type = 'invoice' AND x.internal_id = p.invoice_id
    WHERE p.invoice_id IS NOT NULL
)
SELECT provider, invoice_id,
       count(*) AS copies,
       string_agg(external_id, ',' ORDER BY preference) AS external_ids,
       arg_min(external_id, preference) AS external_id,
       arg_min(currency, preference) AS currency,
       arg_min(total, preference) AS total,
       arg_min(status, preference) AS status,
       arg_min(amount_paid, preference) AS amount_paid,
       arg_min(amount_refunded, preference) AS amount_refunded,
       arg_min(line_count, preference) AS line_count,
       max(snapshot_at) AS snapshot_at
FROM ranked
GROUP BY provider, invoice_id;
