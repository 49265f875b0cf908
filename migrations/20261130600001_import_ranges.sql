-- Which inbound rows an import stored: their ids lie between the id sequence's value
-- when the import started (`inbound_from`) and its value at the import's latest commit
-- (`inbound_to`), so `import show` and `import cancel` find them by a range of the
-- primary key, filtered on `import_id`. An index on `import_id` found them too, but
-- every imported row wrote it, and an index of one value per import is rewritten at
-- nearly every insert: a large share of Postgres' work per imported row.
ALTER TABLE imports
    ADD COLUMN inbound_from BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN inbound_to   BIGINT NOT NULL DEFAULT 0;
UPDATE imports m SET inbound_from = r.lo, inbound_to = r.hi
FROM (SELECT import_id, min(id) AS lo, max(id) AS hi FROM inbound_records
      WHERE import_id IS NOT NULL GROUP BY import_id) r
WHERE r.import_id = m.id;
DROP INDEX inbound_records_import;
