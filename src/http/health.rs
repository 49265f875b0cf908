//! `/healthz` (the process runs) and `/readyz` (the database answers and mappings are loaded).

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::store;
use crate::store::destination::Mode;

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = database_detail(&state).await;
    let mappings = state.registry.current();
    let reload_error = state.registry.last_error();
    let delivery = delivery_detail(&state).await;
    let ready = database.is_ok() && !mappings.is_empty();
    let body = json!({
        "ready": ready,
        "database": match &database {
            Ok(()) => json!({"ok": true}),
            Err(e) => json!({"ok": false, "error": e}),
        },
        "mappings": {
            "ok": !mappings.is_empty(),
            "sources": mappings.source_ids().collect::<Vec<_>>(),
            "last_reload_error": reload_error,
        },
        "delivery": delivery,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// The database answers and has been prepared (created, migrated); else why not.
async fn database_detail(state: &AppState) -> Result<(), String> {
    if let Err(e) = store::ping(&state.pool).await {
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
/// degraded and why (WebEngage kept failing: the circuit breaker).
pub async fn delivery_detail(state: &AppState) -> serde_json::Value {
    if !state.has_credentials {
        return json!({"state": "paused", "reason": "WEBENGAGE_LICENSE_CODE and WEBENGAGE_API_KEY are not set: webhooks are accepted and stored, delivery waits for them"});
    }
    match store::destination::load(&state.pool).await {
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
        Err(_) => json!({"state": "unknown"}),
    }
}
