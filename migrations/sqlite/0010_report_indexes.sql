-- The report's score validation reads one score's history at a time, and churn from the
-- first churn event per account; its step effects read one journey's sent and held-out
-- records.
CREATE INDEX score_history_name ON score_history (name, account_id, at);
CREATE INDEX events_name ON events (name, account_id);
CREATE INDEX outbox_journey_created ON outbox (journey_id, created_at);
