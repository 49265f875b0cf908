//! The support staff's surface: the JSON API under `/admin/api` and the pages under `/admin`.

pub mod api;
pub mod auth;
mod login;
mod pages;
pub mod session;
mod views;

use actix_web::web;

pub use auth::{AdminTokens, Caller, PageCaller, Role};

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
    cfg.service(
        web::resource("/admin/login")
            .route(web::get().to(login::form))
            .route(web::post().to(login::login)),
    )
    .service(
        web::resource("/admin/logout")
            .route(web::get().to(login::logout))
            .route(web::post().to(login::logout)),
    )
    .route("/admin", web::get().to(pages::dashboard))
    .route("/admin/", web::get().to(pages::dashboard))
    .route("/admin/outbox", web::get().to(pages::outbox))
    .route("/admin/outbox/{id}", web::get().to(pages::row))
    .route("/admin/outbox/{id}/retry", web::post().to(pages::retry))
    .route("/admin/outbox/{id}/cancel", web::post().to(pages::cancel))
    .route("/admin/inbound/{id}", web::get().to(pages::inbound))
    .route("/admin/inbound/{id}/remap", web::post().to(pages::remap))
    .route("/admin/issues", web::get().to(pages::issues))
    .route("/admin/issues/rows", web::get().to(pages::issue_rows))
    .route("/admin/issues/replay", web::post().to(pages::replay_issue));
}
