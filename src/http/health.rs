//! `/healthz` (the process runs) and `/readyz` (the database answers and mappings are
//! loaded). Neither waits on Postgres for more than `probe::BUDGET`.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use super::probe::{DatabaseProbe, Health};
use crate::ingest::Registry;
use crate::store;
use crate::store::destination::{DestinationState, Mode};
use crate::store::ready::Readiness;

/// What `/healthz`, `/readyz` and `/metrics` read, in `serve` and in `worker`.
#[derive(Clone)]
pub struct HealthState {
    pub probe: Arc<DatabaseProbe>,
    /// Whether the database has been created and migrated.
    pub database: Arc<Readiness>,
    /// The mappings, where this process maps webhooks (not in `worker`).
    pub registry: Option<Arc<Registry>>,
    /// Which WebEngage credentials are missing, when any is.
    pub credentials_problem: Option<String>,
}

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<HealthState>) -> HttpResponse {
    let health = state.probe.health().await;
    let database = database_detail(&state, &health);
    let mut ready = database.is_ok();
    let mut body = json!({
        "database": match &database {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "error": e}),
        },
        "delivery": delivery_state(
            state.credentials_problem.as_deref(),
            health.destination.as_ref().ok_or(()),
        ),
    });
    if let Some(registry) = &state.registry {
        let mappings = registry.current();
        ready &= !mappings.is_empty();
        body["mappings"] = json!({
            "ok": !mappings.is_empty(),
            "sources": mappings.source_ids().collect::<Vec<_>>(),
            "last_reload_error": registry.last_error(),
        });
    }
    body["ready"] = json!(ready);
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The database answers and has been prepared (created, migrated); else why not.
fn database_detail(state: &HealthState, health: &Health) -> Result<(), String> {
    if let Err(e) = &health.database {
        return Err(format!("Postgres is unavailable: {e}"));
    }
    if !state.database.is_prepared() {
        let why = state.database.last_error().unwrap_or_default();
        return Err(format!(
            "the database is not prepared yet (create, migrate): {why}"
        ));
    }
    Ok(())
}

/// Running, paused and why (missing credentials, a 401/404 from WebEngage), or
/// degraded and why (WebEngage kept failing: the circuit breaker); read from the
/// database now (the admin API and pages).
pub async fn delivery_detail(state: &AppState) -> serde_json::Value {
    let destination = store::destination::load(&state.pool).await;
    delivery_state(
        state.credentials_problem.as_deref(),
        destination.as_ref().map_err(|_| ()),
    )
}

fn delivery_state(
    credentials_problem: Option<&str>,
    destination: Result<&DestinationState, ()>,
) -> serde_json::Value {
    if let Some(problem) = credentials_problem {
        return json!({"state": "paused", "reason": problem});
    }
    match destination {
        Ok(s) => {
            let next_probe_at = s.next_probe_at.map(|t| t.to_string());
            match s.mode() {
                Mode::Running => json!({"state": "running"}),
                Mode::Paused(reason) => {
                    json!({"state": "paused", "reason": reason, "next_probe_at": next_probe_at})
                }
                Mode::Degraded(reason) => {
                    json!({"state": "degraded", "reason": reason, "next_probe_at": next_probe_at, "failed_probes": s.failed_probes})
                }
            }
        }
        Err(()) => json!({"state": "unknown"}),
    }
}
