-- touchline schema (PostgreSQL). Times are milliseconds since the Unix epoch; JSON is TEXT.

CREATE TABLE accounts (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    plan              TEXT,
    arr               DOUBLE PRECISION,
    mrr               DOUBLE PRECISION,
    industry          TEXT,
    owner             TEXT,
    timezone          TEXT,
    goals             TEXT NOT NULL DEFAULT '[]',
    status            TEXT NOT NULL DEFAULT 'active',
    contract_start    BIGINT,
    contract_end      BIGINT,
    created_at        BIGINT,
    last_login_at     BIGINT,
    attributes        TEXT NOT NULL DEFAULT '{}',
    row_hash          TEXT NOT NULL DEFAULT '',
    metrics           TEXT NOT NULL DEFAULT '{}',
    scores            TEXT NOT NULL DEFAULT '{}',
    tier              TEXT,
    tier_rule         TEXT,
    data_version      BIGINT NOT NULL DEFAULT 1,
    evaluated_version BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX accounts_dirty ON accounts (id) WHERE data_version > evaluated_version;

CREATE TABLE contacts (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    email         TEXT NOT NULL,
    name          TEXT,
    first_name    TEXT,
    role          TEXT,
    locale        TEXT,
    timezone      TEXT,
    subscribed    BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT,
    last_login_at BIGINT,
    attributes    TEXT NOT NULL DEFAULT '{}',
    row_hash      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX contacts_account ON contacts (account_id);

CREATE TABLE account_metrics (
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE metric_history (
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (account_id, name, at)
);

CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    event_key  TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL,
    contact_id TEXT,
    name       TEXT NOT NULL,
    at         BIGINT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE score_history (
    account_id TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX score_history_account ON score_history (account_id, at);

CREATE TABLE tier_changes (
    account_id TEXT NOT NULL,
    from_tier  TEXT,
    to_tier    TEXT NOT NULL,
    rule       TEXT NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX tier_changes_account ON tier_changes (account_id, at);

CREATE TABLE journey_versions (
    journey_id TEXT NOT NULL,
    hash       TEXT NOT NULL,
    text       TEXT NOT NULL,
    first_seen BIGINT NOT NULL,
    PRIMARY KEY (journey_id, hash)
);

CREATE TABLE enrollments (
    id              BIGSERIAL PRIMARY KEY,
    journey_id      TEXT NOT NULL,
    version_hash    TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    contact_id      TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL,
    step_index      BIGINT NOT NULL DEFAULT 0,
    wait_started_at BIGINT,
    next_due_at     BIGINT,
    entered_at      BIGINT NOT NULL,
    ended_at        BIGINT,
    end_reason      TEXT,
    version         BIGINT NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX enrollments_one_active ON enrollments (journey_id, account_id, contact_id) WHERE status = 'active';
CREATE INDEX enrollments_due ON enrollments (next_due_at, id) WHERE status = 'active';
CREATE INDEX enrollments_account ON enrollments (account_id);

CREATE TABLE enrollment_log (
    id            BIGSERIAL PRIMARY KEY,
    enrollment_id BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    step_id       TEXT,
    event         TEXT NOT NULL,
    detail        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX enrollment_log_enrollment ON enrollment_log (enrollment_id);

CREATE TABLE entry_edges (
    journey_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    contact_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (journey_id, account_id, contact_id)
);
CREATE INDEX entry_edges_account ON entry_edges (account_id);

CREATE TABLE cron_fires (
    journey_id TEXT NOT NULL,
    fire_at    BIGINT NOT NULL,
    PRIMARY KEY (journey_id, fire_at)
);

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    enrollment_id   BIGINT NOT NULL,
    journey_id      TEXT NOT NULL,
    step_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    contact_id      TEXT NOT NULL DEFAULT '',
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE status = 'pending';

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
