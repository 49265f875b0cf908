-- The idempotency id (`request_id`) is a UUIDv7 the bridge makes for each outbox row:
-- a millisecond timestamp and 74 random bits, unique by construction. The constraint's
-- index was written with every outbox row, about a tenth of Postgres' work per
-- webhook in the ingest benchmark, and nothing looks a row up by it.
ALTER TABLE outbox DROP CONSTRAINT outbox_request_id_key;
