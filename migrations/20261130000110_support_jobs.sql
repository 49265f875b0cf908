-- Bulk support actions (re-map every matching record) run in the background; support
-- staff watch their progress here, from the console, the API or psql.
CREATE TABLE support_jobs (
    id          BIGSERIAL   PRIMARY KEY,
    action      TEXT        NOT NULL,
    -- What the job works on, as the audit log says it (never personal data).
    target      TEXT        NOT NULL,
    role        TEXT        NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'running'
                CHECK (state IN ('running', 'done', 'failed')),
    -- Matching records when the job started (the dry-run count), and how far it is.
    total       BIGINT      NOT NULL,
    done        BIGINT      NOT NULL DEFAULT 0,
    remapped    BIGINT      NOT NULL DEFAULT 0,
    operations  BIGINT      NOT NULL DEFAULT 0,
    failed      BIGINT      NOT NULL DEFAULT 0,
    -- The first reasons records could not be re-mapped (at most 100).
    errors      JSONB       NOT NULL DEFAULT '[]'::jsonb,
    -- Why the job stopped, when it failed.
    error       TEXT,
    started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);

-- The issues view keeps replayed rows in their group ("being retried") until they are
-- delivered or dead again. Fresh rows have no `replayed_at`: an insert writes nothing here.
CREATE INDEX outbox_replayed_open ON outbox (id)
    WHERE replayed_at IS NOT NULL AND status IN ('pending', 'in_flight');
