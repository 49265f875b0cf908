//! The support staff's surface: the JSON API under `/admin/api` and the pages under `/admin`.

pub mod api;
pub mod auth;
pub mod session;

use actix_web::web;

pub use auth::{AdminTokens, Caller, Role};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/api")
            .route("/stats", web::get().to(api::stats))
            .route("/outbox", web::get().to(api::list_outbox))
            .route("/outbox/replay", web::post().to(api::replay))
            .route("/outbox/{id}", web::get().to(api::show_outbox))
            .route("/outbox/{id}/retry", web::post().to(api::retry))
            .route("/outbox/{id}/cancel", web::post().to(api::cancel))
            .route("/inbound", web::get().to(api::list_inbound))
            .route("/inbound/remap", web::post().to(api::remap_many))
            .route("/inbound/{id}/remap", web::post().to(api::remap_one))
            .route("/audit", web::get().to(api::audit_log)),
    );
}
