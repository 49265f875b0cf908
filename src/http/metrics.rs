//! `GET /metrics` in Prometheus text format. Counters are recorded where things happen
//! (the `metrics` facade); gauges of the outbox are read from Postgres in the background
//! (`probe`), so every process reports the shared truth without waiting on Postgres.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::health::HealthState;
use crate::store::OutboxStatus;

/// Seconds: from milliseconds (a commit) to an hour (a delivery after retries).
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];
/// Requests per group commit: one alone up to a few hundred under load.
const REQUESTS_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the bridge emits, with its `# HELP` text. Names are part of the
/// operators' dashboards and alerts (deploy/): rename nothing.
const METRICS: &[(&str, Kind, &str)] = &[
    (
        "bridge_webhooks_total",
        Kind::Counter,
        "Webhook requests answered, by source and outcome (accepted, unauthorized, storage_error, spooled, ...)",
    ),
    (
        "bridge_records_total",
        Kind::Counter,
        "CRM records stored from webhooks, by source and status (mapped, ignored, stale, failed, duplicate)",
    ),
    (
        "bridge_outbox_rows",
        Kind::Gauge,
        "Outbox rows by status, read from Postgres",
    ),
    (
        "bridge_inbound_records",
        Kind::Gauge,
        "Stored CRM records by status, read from Postgres",
    ),
    (
        "bridge_outbox_oldest_pending_age_seconds",
        Kind::Gauge,
        "Age of the oldest outbox row waiting for WebEngage (pending or in flight); 0 when none waits",
    ),
    (
        "bridge_database_up",
        Kind::Gauge,
        "1 when Postgres answered the latest check, else 0",
    ),
    (
        "bridge_delivery_paused",
        Kind::Gauge,
        "1 while delivery to WebEngage is paused (a 401/404, or credentials missing)",
    ),
    (
        "bridge_delivery_degraded",
        Kind::Gauge,
        "1 while the circuit breaker holds delivery (WebEngage kept failing) and probes with one row",
    ),
    (
        "bridge_outbox_queued",
        Kind::Gauge,
        "Outbox rows waiting for WebEngage, by kind (user, event, transaction)",
    ),
    (
        "bridge_delivered_per_minute",
        Kind::Gauge,
        "Rows WebEngage accepted per minute, averaged over the last five minutes",
    ),
    (
        "bridge_backlog_drain_seconds",
        Kind::Gauge,
        "Estimated seconds to deliver the queued rows at the configured quotas",
    ),
    (
        "bridge_mapping_warnings_total",
        Kind::Counter,
        "Mapping warnings (a value dropped or changed to fit WebEngage), by source and rule",
    ),
    (
        "bridge_mapping_failures_total",
        Kind::Counter,
        "Records a mapping rule failed (stored as failed, nothing sent), by source and rule",
    ),
    (
        "bridge_mapping_reloads_total",
        Kind::Counter,
        "Reloads of the mappings folder, by outcome (ok, error)",
    ),
    (
        "bridge_mapping_reload_failing",
        Kind::Gauge,
        "1 while the mappings folder on disk does not load (the previous set keeps serving)",
    ),
    (
        "bridge_spool_pending_records",
        Kind::Gauge,
        "Webhooks answered from the local spool that are not in Postgres yet",
    ),
    (
        "bridge_spool_replayed_total",
        Kind::Counter,
        "Spooled webhooks replayed into Postgres",
    ),
    (
        "bridge_spool_quarantined_total",
        Kind::Counter,
        "Spooled records Postgres refused, set aside in the spool's quarantine file",
    ),
    (
        "bridge_spool_quarantined_records",
        Kind::Gauge,
        "Records in the spool's quarantine file, waiting for support staff",
    ),
    (
        "bridge_webengage_responses_total",
        Kind::Counter,
        "Calls to WebEngage by endpoint and HTTP status; code=\"error\" when no answer came (timeout, connection)",
    ),
    (
        "bridge_delivery_latency_seconds",
        Kind::Histogram,
        "Seconds from a record's acceptance (or replay) to WebEngage accepting it",
    ),
    (
        "bridge_limiter_wait_seconds_total",
        Kind::Gauge,
        "Seconds delivery waited for WebEngage's rate limits, by endpoint (only grows)",
    ),
    (
        "bridge_outbox_dead_total",
        Kind::Counter,
        "Outbox rows that went dead (rejected by WebEngage, or out of retry age)",
    ),
    (
        "bridge_group_commit_requests",
        Kind::Histogram,
        "Webhook requests committed together in one Postgres transaction (a count, not seconds)",
    ),
];

/// The process-wide recorder (installed once, even when tests start many apps).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("bridge_group_commit_requests".into()),
                    REQUESTS_BUCKETS,
                )
            })
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness) may already be global; ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        for (name, kind, help) in METRICS {
            match kind {
                Kind::Counter => metrics::describe_counter!(*name, *help),
                Kind::Gauge => metrics::describe_gauge!(*name, *help),
                Kind::Histogram => metrics::describe_histogram!(*name, *help),
            }
        }
        handle
    })
}

pub async fn metrics(state: web::Data<HealthState>) -> HttpResponse {
    record_database_gauges(&state).await;
    let handle = handle();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

async fn record_database_gauges(state: &HealthState) {
    let (health, stats) = tokio::join!(state.probe.health(), state.probe.stats());
    metrics::gauge!("bridge_database_up").set(if health.database.is_ok() { 1.0 } else { 0.0 });
    if let Some(stats) = stats {
        for status in OutboxStatus::ALL {
            let n = stats.count(status);
            metrics::gauge!("bridge_outbox_rows", "status" => status.as_str()).set(n as f64);
        }
        for (status, n) in &stats.inbound_by_status {
            metrics::gauge!("bridge_inbound_records", "status" => status.clone()).set(*n as f64);
        }
        metrics::gauge!("bridge_outbox_oldest_pending_age_seconds")
            .set(stats.oldest_pending_age_seconds);
        let backlog = &stats.backlog;
        for (kind, n) in [
            ("user", backlog.queued.users),
            ("event", backlog.queued.events),
            ("transaction", backlog.queued.transactions),
        ] {
            metrics::gauge!("bridge_outbox_queued", "kind" => kind).set(n as f64);
        }
        metrics::gauge!("bridge_delivered_per_minute").set(backlog.delivered_per_minute);
        if let Some(seconds) = backlog.drain_seconds {
            metrics::gauge!("bridge_backlog_drain_seconds").set(seconds);
        }
    }
    // Missing credentials pause delivery whatever the database says; otherwise the
    // destination's state, when the last reading has it.
    let (paused, degraded) = match (&state.credentials_problem, &health.destination) {
        (Some(_), _) => (Some(true), Some(false)),
        (None, Some(destination)) => (
            Some(destination.is_paused()),
            Some(destination.is_degraded()),
        ),
        (None, None) => (None, None),
    };
    if let Some(paused) = paused {
        metrics::gauge!("bridge_delivery_paused").set(if paused { 1.0 } else { 0.0 });
    }
    if let Some(degraded) = degraded {
        metrics::gauge!("bridge_delivery_degraded").set(if degraded { 1.0 } else { 0.0 });
    }
}

#[cfg(test)]
mod tests {
    use super::METRICS;

    /// A metric recorded anywhere in `src/` without an entry here would have no `# HELP`.
    #[test]
    fn every_metric_recorded_in_the_code_is_described() {
        let call = regex::Regex::new(r#"metrics::(counter|gauge|histogram)!\(\s*"([a-z_]+)""#)
            .expect("a regex");
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        let mut found = 0;
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("src/ reads") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("a source file");
                for c in call.captures_iter(&text) {
                    found += 1;
                    assert!(
                        METRICS.iter().any(|(name, _, _)| *name == &c[2]),
                        "{} records `{}`, which has no # HELP in http::metrics::METRICS",
                        path.display(),
                        &c[2]
                    );
                }
            }
        }
        assert!(found > 15, "only {found} metric calls found");
    }
}
