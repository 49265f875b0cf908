//! Delivery metrics, through the `metrics` facade (rendered by `/metrics` where the
//! HTTP side runs). Names are part of the operators' dashboards: rename nothing.

use time::OffsetDateTime;

use crate::webengage::client::{CallReport, Endpoint};

/// `bridge_webengage_responses_total{endpoint, code}`; `code` is the HTTP status, or
/// `error` when no answer came (timeout, connection).
pub fn response(endpoint: &Endpoint, result: &CallReport) {
    let code = result
        .http_status
        .map_or_else(|| "error".to_owned(), |s| s.to_string());
    metrics::counter!("bridge_webengage_responses_total", "endpoint" => endpoint.name(), "code" => code)
        .increment(1);
}

/// `bridge_delivery_latency_seconds`: from acceptance (or replay) to WebEngage's 2xx.
pub fn delivered(accepted_at: OffsetDateTime) {
    let seconds = (OffsetDateTime::now_utc() - accepted_at).as_seconds_f64();
    metrics::histogram!("bridge_delivery_latency_seconds").record(seconds.max(0.0));
}

/// `bridge_outbox_dead_total`: rows that will never be delivered.
pub fn dead() {
    metrics::counter!("bridge_outbox_dead_total").increment(1);
}

/// `bridge_delivery_paused`: 1 while a 401/404 (or missing credentials) holds delivery.
pub fn paused(paused: bool) {
    metrics::gauge!("bridge_delivery_paused").set(if paused { 1.0 } else { 0.0 });
}

/// `bridge_delivery_degraded`: 1 while the circuit breaker holds delivery (WebEngage
/// kept failing) and one row probes.
pub fn degraded(degraded: bool) {
    metrics::gauge!("bridge_delivery_degraded").set(if degraded { 1.0 } else { 0.0 });
}
