-- Statuses and kinds as enum types (`store::status`): a query naming a status that does
-- not exist fails at once instead of matching nothing, and each value takes 4 bytes.
CREATE TYPE outbox_status AS ENUM ('pending', 'in_flight', 'delivered', 'dead', 'cancelled');
CREATE TYPE inbound_status AS ENUM ('mapped', 'ignored', 'stale', 'failed', 'malformed');
CREATE TYPE operation_kind AS ENUM ('user', 'event', 'transaction');

-- Indexes are rebuilt from their text when a column changes type, and a predicate
-- such as `status = 'pending'::text` has no operator for the enum: drop them, change
-- the columns, create them again as they were.
DROP INDEX outbox_claim_fresh;
DROP INDEX outbox_claim_retry;
DROP INDEX outbox_due;
DROP INDEX outbox_leases;
DROP INDEX outbox_status;
DROP INDEX outbox_user_open;
DROP INDEX inbound_records_status;

ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ALTER COLUMN status DROP DEFAULT;
ALTER TABLE outbox
    ALTER COLUMN status TYPE outbox_status USING status::outbox_status,
    ALTER COLUMN kind TYPE operation_kind USING kind::operation_kind;
ALTER TABLE outbox ALTER COLUMN status SET DEFAULT 'pending';

ALTER TABLE inbound_records DROP CONSTRAINT inbound_records_status_check;
ALTER TABLE inbound_records
    ALTER COLUMN status TYPE inbound_status USING status::inbound_status;

CREATE INDEX outbox_claim_fresh ON outbox (kind, id) WHERE status = 'pending' AND attempts = 0;
CREATE INDEX outbox_claim_retry ON outbox (kind, id) WHERE status = 'pending' AND attempts > 0;
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE status = 'pending' AND next_attempt_at > created_at;
CREATE INDEX outbox_leases ON outbox (lease_until) WHERE status = 'in_flight';
CREATE INDEX outbox_status ON outbox (status, id) WHERE status IN ('in_flight', 'dead', 'cancelled');
CREATE INDEX outbox_user_open ON outbox (user_id, id) WHERE status IN ('pending', 'in_flight');
CREATE INDEX inbound_records_status ON inbound_records (status, id) WHERE status <> 'mapped';
