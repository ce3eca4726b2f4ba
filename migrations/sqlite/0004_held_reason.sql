-- Why a record waits (a send window, the frequency cap), and when it was delivered, shown by
-- `touchline deliveries`.
ALTER TABLE outbox ADD COLUMN held_reason TEXT;
