//! The support staff's surface: the JSON API under `/admin/api` and the pages under `/admin`.

pub mod access;
pub mod api;
mod imports;
mod login;
mod pages;
mod record_pages;
pub mod session;
mod views;

use actix_web::web;

pub use access::{AdminTokens, ApiCaller, PageCaller, Role};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin/api")
            .route("/stats", web::get().to(api::stats))
            .route("/outbox", web::get().to(api::list_outbox))
            .route("/outbox/replay", web::post().to(api::replay))
            .route("/outbox/{id}", web::get().to(api::show_outbox))
            .route("/outbox/{id}/retry", web::post().to(api::retry))
            .route("/outbox/{id}/cancel", web::post().to(api::cancel))
            .route("/outbox/{id}/resend", web::post().to(api::resend))
            .route("/inbound", web::get().to(api::list_inbound))
            .route("/inbound/{id}", web::get().to(api::show_inbound))
            .route("/inbound/remap", web::post().to(api::remap_many))
            .route("/inbound/{id}/remap", web::post().to(api::remap_one))
            .route("/jobs/{id}", web::get().to(api::show_job))
            .route("/erase", web::post().to(api::erase))
            .route("/audit", web::get().to(api::audit_log))
            .route("/imports", web::get().to(imports::list))
            .route("/imports/{id}", web::get().to(imports::show))
            .route("/imports/{id}/cancel", web::post().to(imports::cancel)),
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
    .route("/admin/outbox/{id}/resend", web::post().to(pages::resend))
    .route("/admin/inbound", web::get().to(record_pages::records))
    .route(
        "/admin/inbound/remap",
        web::post().to(record_pages::remap_all),
    )
    .route("/admin/inbound/{id}", web::get().to(pages::inbound))
    .route("/admin/inbound/{id}/remap", web::post().to(pages::remap))
    .route("/admin/imports", web::get().to(imports::page))
    .route(
        "/admin/imports/{id}/cancel",
        web::post().to(imports::cancel_page),
    )
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
