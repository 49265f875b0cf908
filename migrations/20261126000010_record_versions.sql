-- The stale-update fence: the newest version accepted per CRM record. A record older
-- than this is stored as `stale` and produces nothing (CRMs redeliver out of order).
CREATE TABLE record_versions (
    source      TEXT        NOT NULL,
    record_key  TEXT        NOT NULL,
    -- Normalised RFC 3339 UTC text, so that later versions compare greater.
    version_at  TEXT        NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, record_key)
);
