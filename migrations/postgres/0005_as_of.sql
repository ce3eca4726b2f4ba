-- A pass at time T sees only data dated at or before T. Accounts know the time of their
-- latest metric value (to spot values dated after a pass), when they must be evaluated again
-- even if nothing changes (a value coming due, rules that read the time), and events dated
-- after the pass that read them wait in future_events for their time. Every account is
-- evaluated once more after the upgrade, which sets its recheck time.
ALTER TABLE accounts ADD COLUMN metrics_latest_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN recheck_at BIGINT;
UPDATE accounts SET metrics_latest_at =
    COALESCE((SELECT MAX(at) FROM account_metrics m WHERE m.account_id = accounts.id), 0);
CREATE INDEX accounts_recheck ON accounts (recheck_at) WHERE recheck_at IS NOT NULL;
CREATE INDEX metric_history_account ON metric_history (account_id, at);
CREATE INDEX events_logins ON events (account_id, at) WHERE name = 'login';

CREATE TABLE future_events (
    seq BIGINT PRIMARY KEY,
    at  BIGINT NOT NULL
);
CREATE INDEX future_events_at ON future_events (at);
UPDATE accounts SET recheck_at = 0;
