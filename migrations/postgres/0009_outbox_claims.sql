-- Claims whose lease ran out are found without reading the whole outbox (every claim
-- round looks for them), and held records per journey likewise (every pass while a hold
-- lasts counts them).
CREATE INDEX outbox_sending ON outbox (lease_until) WHERE status = 'sending';
CREATE INDEX outbox_held ON outbox (journey_id) WHERE status = 'held';
