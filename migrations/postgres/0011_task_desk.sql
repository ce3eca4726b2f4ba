-- What CSMs do with their tasks: snooze until a time, a note when done, and a history of
-- every change (who, when, what) for the account page and for audits.
ALTER TABLE tasks ADD COLUMN snoozed_until BIGINT;
ALTER TABLE tasks ADD COLUMN note TEXT;
CREATE TABLE task_log (
    id      BIGSERIAL PRIMARY KEY,
    task_id BIGINT NOT NULL,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX task_log_task ON task_log (task_id);
