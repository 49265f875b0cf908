//! HTTP routes. Handlers parse the request into domain types and call one function.

pub mod admin;
pub mod error;
pub mod health;
pub mod metrics;
pub mod probe;
pub mod request_span;
pub mod webhooks;

use std::sync::Arc;

use actix_web::web;
use sqlx::PgPool;

use crate::ingest::{Ingest, Registry};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Webhooks from authenticated bytes to the answer (`ingest`); its `types` and
    /// `spool` serve the admin surface too.
    pub ingest: Ingest,
    pub registry: Arc<Registry>,
    /// Whether the database has been created and migrated (retried while Postgres is down).
    pub database: Arc<crate::store::ready::Readiness>,
    /// How webhook bodies are read.
    pub webhooks: webhooks::BodyLimits,
    pub has_credentials: bool,
    /// Which WebEngage credentials are missing, by name, when any is.
    pub credentials_problem: Option<String>,
    pub admin: admin::AdminTokens,
}

/// Every route of `serve`. The app data: `AppState` and `health::HealthState`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(health_routes)
        .service(web::scope("/webhooks").default_service(web::to(webhooks::route)))
        .configure(admin::routes)
        .default_service(web::to(error::no_route));
}

/// `/healthz`, `/readyz` and `/metrics`: all a `worker` process serves. The app data:
/// `health::HealthState`.
pub fn health_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics));
}
