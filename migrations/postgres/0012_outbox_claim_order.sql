-- Claims take the oldest pending records in (next_attempt_at, id) order. Ordered by
-- next_attempt_at alone, the index left PostgreSQL to read and sort every pending record due
-- on each claim, so a claim cost grew with the backlog (SQLite's index already ends in the
-- row id, which is the record id).
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (next_attempt_at, id) WHERE status = 'pending';
