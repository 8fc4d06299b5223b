-- Outbound notifications (contract section 6). Idempotent: run at every connect.
CREATE SCHEMA IF NOT EXISTS notify;
