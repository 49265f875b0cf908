-- Per-user queues: only each user's head (its first open row) is a claim candidate, as
-- in SQS FIFO message groups, so a claim never walks the rows queued behind heads that
-- are in flight or waiting for a retry. A new row is a head when its user has no open
-- row (`store::outbox` decides it when inserting); when a head is delivered, dead or
-- cancelled, its user's next open row becomes the head. Rows without a user are heads.
ALTER TABLE outbox ADD COLUMN head BOOLEAN NOT NULL DEFAULT true;
UPDATE outbox o SET head = false
WHERE o.status IN ('pending', 'in_flight') AND o.user_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM outbox e
              WHERE e.user_id = o.user_id AND e.id < o.id AND e.status IN ('pending', 'in_flight'));

-- A user update merged into another row's record (BRIDGE_COALESCE_USERS): delivered
-- with it, by the row named here.
ALTER TABLE outbox ADD COLUMN coalesced_into BIGINT;

DROP INDEX outbox_claim_fresh;
DROP INDEX outbox_claim_retry;
DROP INDEX outbox_due;
CREATE INDEX outbox_claim_fresh ON outbox (kind, id)
    WHERE status = 'pending' AND head AND attempts = 0;
-- Retries by due time: a claim stops at the first one not due yet.
CREATE INDEX outbox_claim_retry ON outbox (kind, next_attempt_at, id)
    WHERE status = 'pending' AND head AND attempts > 0;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE status = 'pending' AND head AND next_attempt_at > created_at;

-- The circuit breaker: after failed calls in a row the destination is `degraded`; the
-- workers stop claiming and probe with one row on a backoff (`failed_probes`).
ALTER TABLE destination_state
    ADD COLUMN degraded_reason TEXT,
    ADD COLUMN degraded_at TIMESTAMPTZ,
    ADD COLUMN failed_probes INTEGER NOT NULL DEFAULT 0;

-- Times the destination was paused or degraded: they do not count towards a row's
-- BRIDGE_RETRY_MAX_AGE, since no row could be delivered then.
CREATE TABLE destination_outages (
    id         BIGSERIAL PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at   TIMESTAMPTZ,
    reason     TEXT        NOT NULL
);
CREATE UNIQUE INDEX destination_outages_open ON destination_outages ((true)) WHERE ended_at IS NULL;

-- The backlog and the deliveries of each minute, for the last day's chart and the
-- delivery rate: every worker adds what it delivered, the queued counts are the latest.
CREATE TABLE backlog_minutes (
    at           TIMESTAMPTZ NOT NULL PRIMARY KEY,
    users        BIGINT      NOT NULL,
    events       BIGINT      NOT NULL,
    transactions BIGINT      NOT NULL,
    delivered    BIGINT      NOT NULL
);

-- Records per minute the workers can deliver of each kind at their configured quotas
-- (written by each worker at start), for the time to drain the backlog.
ALTER TABLE destination_state
    ADD COLUMN capacity_users INTEGER,
    ADD COLUMN capacity_events INTEGER,
    ADD COLUMN capacity_transactions INTEGER;
