-- Console sessions live on the server, so that logging out ends one for good and an
-- operator can end them all (DELETE FROM admin_sessions). The cookie holds a random id;
-- only its SHA-256 is stored, so a copy of this table opens no session.
CREATE TABLE admin_sessions (
    id_hash     BYTEA       PRIMARY KEY,
    role        TEXT        NOT NULL CHECK (role IN ('admin', 'viewer')),
    -- HMAC of the token that logged in, under the stored key below: rotating a token
    -- ends the sessions it opened, and the token itself is never stored.
    token_mac   BYTEA       NOT NULL,
    -- Echoed by every form of the session (CSRF), random per session.
    csrf        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- The key of the MACs above: random, made once per database, shared by every process.
-- gen_random_uuid() draws from Postgres' strong random source: two of them give 244
-- random bits without the pgcrypto extension.
CREATE TABLE admin_keys (
    id   SMALLINT PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    key  BYTEA    NOT NULL
);
INSERT INTO admin_keys (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
