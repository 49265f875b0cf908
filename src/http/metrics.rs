//! `GET /metrics` in Prometheus text format. Counters are recorded where things happen
//! (the `metrics` facade); gauges of the outbox are read from Postgres at scrape time,
//! so every process reports the shared truth.

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::AppState;
use crate::store;
use crate::store::OutboxStatus;

/// The process-wide recorder (installed once, even when tests start many apps).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
            ])
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness) may already be global; ours still renders.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    record_outbox_gauges(&state).await;
    let handle = handle();
    handle.run_upkeep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}

async fn record_outbox_gauges(state: &AppState) {
    match store::stats::outbox_stats(&state.pool).await {
        Ok(stats) => {
            for status in OutboxStatus::ALL {
                let n = stats.count(status);
                metrics::gauge!("bridge_outbox_rows", "status" => status.as_str()).set(n as f64);
            }
            for (status, n) in &stats.inbound_by_status {
                metrics::gauge!("bridge_inbound_records", "status" => status.clone())
                    .set(*n as f64);
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
            metrics::gauge!("bridge_database_up").set(1.0);
        }
        Err(_) => metrics::gauge!("bridge_database_up").set(0.0),
    }
    if let Ok(destination) = store::destination::load(&state.pool).await {
        let paused = destination.is_paused() || !state.has_credentials;
        metrics::gauge!("bridge_delivery_paused").set(if paused { 1.0 } else { 0.0 });
        let degraded = destination.is_degraded() && !paused;
        metrics::gauge!("bridge_delivery_degraded").set(if degraded { 1.0 } else { 0.0 });
    }
}
