-- The raw CRM records, kept so that a fixed mapping can re-derive payloads later.
CREATE TABLE inbound_records (
    id            BIGSERIAL PRIMARY KEY,
    source        TEXT        NOT NULL,
    dedupe_key    TEXT        NOT NULL,
    status        TEXT        NOT NULL
                  CHECK (status IN ('mapped', 'ignored', 'stale', 'failed', 'malformed')),
    -- The record as mapping saw it (JSON); NULL for a malformed body.
    payload       JSONB,
    -- A body that could not be parsed, kept verbatim (lossy UTF-8) for support staff.
    raw_body      TEXT,
    content_type  TEXT,
    warnings      JSONB       NOT NULL DEFAULT '[]'::jsonb,
    error         TEXT,
    mapping_hash  TEXT,
    request_id    TEXT,
    received_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- CRMs redeliver: the same record under the same key is stored once.
    CONSTRAINT inbound_records_dedupe UNIQUE (source, dedupe_key)
);
CREATE INDEX inbound_records_status ON inbound_records (status, id);
CREATE INDEX inbound_records_received ON inbound_records (received_at);

-- One row per WebEngage call to make.
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    -- Sent as x-request-id: the same on every retry, so WebEngage can drop repeats.
    request_id      UUID        NOT NULL UNIQUE,
    inbound_id      BIGINT      REFERENCES inbound_records (id) ON DELETE CASCADE,
    source          TEXT        NOT NULL,
    rule            TEXT        NOT NULL,
    kind            TEXT        NOT NULL CHECK (kind IN ('user', 'event', 'transaction')),
    -- The WebEngage user: rows of one user are delivered in id order.
    user_id         TEXT,
    body            JSONB       NOT NULL,
    mapping_hash    TEXT,
    status          TEXT        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_flight', 'delivered', 'dead', 'cancelled')),
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until     TIMESTAMPTZ,
    lease_token     UUID,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ
);
-- The claim: due pending rows in id order.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
-- Per-user ordering: is there an earlier unfinished row of this user?
CREATE INDEX outbox_user_open ON outbox (user_id, id) WHERE status IN ('pending', 'in_flight');
-- Expired leases go back to pending.
CREATE INDEX outbox_leases ON outbox (lease_until) WHERE status = 'in_flight';
CREATE INDEX outbox_status ON outbox (status, id);
CREATE INDEX outbox_inbound ON outbox (inbound_id);

-- Every call made for a row: what support staff read when a lead "didn't arrive".
CREATE TABLE delivery_attempts (
    id               BIGSERIAL PRIMARY KEY,
    outbox_id        BIGINT      NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    attempted_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    http_status      INTEGER,
    outcome          TEXT        NOT NULL,
    latency_ms       INTEGER     NOT NULL,
    response_excerpt TEXT,
    request_id       UUID        NOT NULL
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);

-- The destination's state, shared by every worker process: paused by a 401/404 or running.
CREATE TABLE destination_state (
    id             SMALLINT    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    paused_reason  TEXT,
    paused_at      TIMESTAMPTZ,
    next_probe_at  TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO destination_state (id) VALUES (1);

-- Wake the workers as soon as rows are committed.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_ready', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_notify_insert
    AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
