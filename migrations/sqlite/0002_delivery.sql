-- Delivery: leases on outbox records, CSM tasks, counters for round-robin assignment.

ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
ALTER TABLE outbox ADD COLUMN delivered_at INTEGER;
ALTER TABLE outbox ADD COLUMN result TEXT;

CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key  TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    journey_id  TEXT NOT NULL,
    step_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    assignee    TEXT,
    priority    TEXT NOT NULL DEFAULT 'normal',
    status      TEXT NOT NULL DEFAULT 'open',
    due_at      INTEGER,
    reason      TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    outbox_key  TEXT NOT NULL
);
CREATE UNIQUE INDEX tasks_one_open ON tasks (dedupe_key) WHERE status = 'open';
CREATE INDEX tasks_assignee ON tasks (assignee, status);

CREATE TABLE counters (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
