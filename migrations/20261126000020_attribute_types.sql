-- The first-seen type of every custom attribute the bridge sent: WebEngage fixes an
-- attribute's type with its first value and silently stops recording it when a later
-- value has another type. Scope: `user` (account-wide) or `event:<eventName>`.
CREATE TABLE attribute_types (
    scope         TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    json_type     TEXT        NOT NULL
        CHECK (json_type IN ('string', 'number', 'boolean', 'date', 'array', 'object')),
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name)
);
