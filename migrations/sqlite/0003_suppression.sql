-- Suppression list, the frequency cap's lookup, and why a task was closed.

CREATE TABLE suppressions (
    email      TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    detail     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE INDEX outbox_sent_to ON outbox (account_id, contact_id, delivered_at)
    WHERE kind = 'email' AND status = 'sent';

ALTER TABLE tasks ADD COLUMN closed_reason TEXT;
