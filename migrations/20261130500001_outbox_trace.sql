-- The W3C traceparent of the webhook span that stored each outbox row, when the bridge
-- exports OpenTelemetry traces: the WebEngage call that carries the row links to it.
-- NULL when traces are off, for re-mapped rows and for spooled requests. A
-- traceparent is 55 characters; the check keeps anything else out.
ALTER TABLE outbox ADD COLUMN trace_context TEXT
    CHECK (trace_context IS NULL OR length(trace_context) <= 64);
