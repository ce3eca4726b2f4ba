-- The blast-radius guard: journeys whose new outbox records are held (status 'held') until a
-- person releases or discards them.
CREATE TABLE holds (
    journey_id TEXT PRIMARY KEY,
    reason     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
