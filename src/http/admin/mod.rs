//! The support staff's surface: the JSON API under `/admin/api` and the pages under `/admin`.

pub mod access;
pub mod api;
mod api_records;
pub mod api_routes;
mod chart;
mod login;
pub mod openapi;
mod pages;
mod record_pages;
pub mod session;
mod views;

use actix_web::web;

pub use access::{AdminTokens, ApiCaller, PageCaller, Role};

pub fn routes(cfg: &mut web::ServiceConfig) {
    api_routes::register(cfg);
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
    .route("/admin/outbox/{id}/resend", web::post().to(pages::resend))
    .route("/admin/inbound", web::get().to(record_pages::records))
    .route(
        "/admin/inbound/remap",
        web::post().to(record_pages::remap_all),
    )
    .route("/admin/inbound/{id}", web::get().to(pages::inbound))
    .route("/admin/inbound/{id}/remap", web::post().to(pages::remap))
    .route("/admin/erase", web::get().to(record_pages::erase_form))
    .route("/admin/erase", web::post().to(record_pages::erase))
    .route("/admin/issues", web::get().to(pages::issues))
    .route("/admin/issues/rows", web::get().to(pages::issue_rows))
    .route("/admin/issues/replay", web::post().to(pages::replay_issue))
    .route(
        "/admin/issues/remap",
        web::post().to(record_pages::remap_issue),
    )
    .route("/admin/jobs/{id}", web::get().to(record_pages::job));
}
