//! HTTP routes. Handlers parse the request into domain types and call one function.

pub mod admin;
pub mod error;
pub mod health;
pub mod metrics;
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
    pub admin: admin::AdminTokens,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(web::scope("/webhooks").default_service(web::to(webhooks::route)))
        .configure(admin::routes);
}
