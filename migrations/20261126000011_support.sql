-- A replayed row gets a fresh retry budget: its age for BRIDGE_RETRY_MAX_AGE counts from here.
ALTER TABLE outbox ADD COLUMN replayed_at TIMESTAMPTZ;

-- Every support action: who (token role), what, on what, how many rows.
CREATE TABLE admin_audit (
    id         BIGSERIAL PRIMARY KEY,
    at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    role       TEXT        NOT NULL,
    action     TEXT        NOT NULL,
    target     TEXT        NOT NULL,
    rows       BIGINT      NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at DESC);
-- Support staff search by user id.
CREATE INDEX outbox_user_id ON outbox (user_id, id DESC);
