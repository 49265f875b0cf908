-- Per-endpoint quota use per rate window, shared by every worker process: a worker takes
-- permits here (a few at a time) before calling WebEngage, so all processes together
-- stay under the account's per-minute quota.
CREATE TABLE rate_windows (
    endpoint     TEXT        NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    used         INTEGER     NOT NULL,
    -- The permits the last take granted: RETURNING sees only the new row, and a take
    -- near the end of a window may get fewer than it asked for.
    last_grant   INTEGER     NOT NULL,
    PRIMARY KEY (endpoint, window_start)
);
