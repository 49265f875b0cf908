-- The claim takes first attempts and retries apart (so a retry storm cannot starve
-- fresh rows) and, with bulk on, one kind at a time. Each of those claims walks its own
-- partial index in id order and stops at its LIMIT, instead of filtering every pending row.
CREATE INDEX outbox_claim_fresh ON outbox (kind, id) WHERE status = 'pending' AND attempts = 0;
CREATE INDEX outbox_claim_retry ON outbox (kind, id) WHERE status = 'pending' AND attempts > 0;
