-- The ingest path writes one inbound row and (usually) two outbox rows per webhook;
-- every index on them is written with every row, and profiles of the ingest benchmark
-- show index maintenance and foreign-key checks as a large share of Postgres' work.
-- This keeps only what a query needs, and what the ingest path does not write.

-- Nothing reads inbound records by arrival time (the purge goes by outbox rows).
DROP INDEX inbound_records_received;

-- Support lists inbound records by status; almost all are `mapped`, which a scan of
-- the primary key finds at once. The index keeps only the statuses worth finding.
DROP INDEX inbound_records_status;
CREATE INDEX inbound_records_status ON inbound_records (status, id) WHERE status <> 'mapped';

-- Fresh rows are `pending` and the claim has its own partial indexes; `delivered` rows
-- are found at once by the primary key. The rare statuses keep an index, and a fresh
-- insert writes nothing to it.
DROP INDEX outbox_status;
CREATE INDEX outbox_status ON outbox (status, id) WHERE status IN ('in_flight', 'dead', 'cancelled');

-- The foreign key cost a lookup of the inbound row for every outbox row inserted, in
-- the transaction that had just inserted that very row. The purge deletes outbox rows
-- first and then their inbound records (store::outbox::purge_delivered), so the
-- cascade it provided is not needed; `outbox_inbound` still serves the lookups.
ALTER TABLE outbox DROP CONSTRAINT outbox_inbound_id_fkey;

-- The record and the operation bodies are stored and returned whole, never queried
-- inside (support search reads them as text). `jsonb` parsed and key-sorted every
-- document on insert, the largest single item in Postgres' profile of the ingest
-- benchmark; `json` only validates, and keeps the document as the bridge wrote it.
ALTER TABLE inbound_records ALTER COLUMN payload TYPE json;
ALTER TABLE outbox ALTER COLUMN body TYPE json;
