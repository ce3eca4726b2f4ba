-- A record's payload (a rendered mail runs to kilobytes) in a table of its own. Written once
-- and read to deliver, it was copied into every new version of the record's row: a claim
-- and a mark each wrote it again, to the table and to the write-ahead log.
CREATE TABLE outbox_payloads (
    id      BIGINT PRIMARY KEY,
    payload TEXT NOT NULL
);
INSERT INTO outbox_payloads (id, payload) SELECT id, payload FROM outbox;
ALTER TABLE outbox DROP COLUMN payload;
