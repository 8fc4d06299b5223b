-- One delivery per new event and subscribed channel, due at once. A channel subscribes to an
-- event when its type is in the channel's event_types and the channel names no customers or
-- names the invoice's customer. Parameter: $now. Reads temp table `notify_new_events`.
INSERT INTO notify.deliveries
    (message_id, channel, status, attempts, next_attempt_at, created_at)
SELECT e.message_id, c.channel, 'pending', 0, $now, $now
FROM notify_new_events e
JOIN notify.channels c
  ON list_contains(c.event_types, e.event_type)
 AND (len(c.customers) = 0 OR list_contains(c.customers, e.customer_id))
WHERE NOT EXISTS (SELECT 1 FROM notify.deliveries d
                  WHERE d.message_id = e.message_id AND d.channel = c.channel);
