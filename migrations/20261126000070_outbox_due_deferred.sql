-- `outbox_due` serves one question: when is the next row due that is not due now
-- (a retry after its backoff, or a row held back by a 429 or a pause)? A fresh row
-- is due the moment it is inserted (`next_attempt_at` and `created_at` are the same
-- `now()`), so the index no longer holds fresh rows, and an insert writes nothing to
-- it: one index less per outbox row on the ingest path (BENCHMARKS.md, "Ingest").
DROP INDEX outbox_due;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE status = 'pending' AND next_attempt_at > created_at;
