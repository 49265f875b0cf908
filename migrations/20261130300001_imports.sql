-- Historical imports (`webengage-bridge import`): one row per import, its counts kept
-- up to date in the transaction that stores each batch, so that an interrupted import
-- knows exactly how far it got (`rows_done`, and how long its rejects file was then).
CREATE TYPE import_state AS ENUM ('running', 'finished', 'cancelled');

CREATE TABLE imports (
    id            BIGSERIAL    PRIMARY KEY,
    source        TEXT         NOT NULL,
    -- The files as given on the command line, made absolute: with the source, what
    -- tells a re-run of the same command (which continues) from a new import.
    files         TEXT[]       NOT NULL,
    state         import_state NOT NULL DEFAULT 'running',
    -- Data rows read from the files, in order, whose outcome is committed: a resumed
    -- import skips this many.
    rows_done     BIGINT       NOT NULL DEFAULT 0,
    accepted      BIGINT       NOT NULL DEFAULT 0,
    duplicates    BIGINT       NOT NULL DEFAULT 0,
    ignored       BIGINT       NOT NULL DEFAULT 0,
    stale         BIGINT       NOT NULL DEFAULT 0,
    rejected      BIGINT       NOT NULL DEFAULT 0,
    -- Bytes of the rejects file that belong to committed batches: a resumed import
    -- cuts the file back to this, so no rejected row is listed twice.
    rejects_bytes BIGINT       NOT NULL DEFAULT 0,
    -- Which file (its index in `files`) `rejects_bytes` is of.
    rejects_file  INTEGER      NOT NULL DEFAULT 0,
    started_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    finished_at   TIMESTAMPTZ
);
CREATE INDEX imports_resume ON imports (source, started_at DESC) WHERE state = 'running';

-- The import that stored a record (NULL for webhooks), so `import cancel` finds the
-- outbox rows of its records.
ALTER TABLE inbound_records ADD COLUMN import_id BIGINT;
CREATE INDEX inbound_records_import ON inbound_records (import_id) WHERE import_id IS NOT NULL;

-- Live traffic first: imported rows are claimed after webhook rows (0 live, 1 import).
ALTER TABLE outbox ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0;
-- The fresh-row claim walks this index in its order (kind, priority, id): live rows
-- of a kind first, without a sort, however large an import's backlog.
DROP INDEX outbox_claim_fresh;
CREATE INDEX outbox_claim_fresh ON outbox (kind, priority, id)
    WHERE status = 'pending' AND head AND attempts = 0;
