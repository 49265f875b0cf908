//! The support staff's surface: the JSON API under `/admin/api` and the pages under `/admin`.

pub mod access;
pub mod api;
mod api_records;
pub mod api_routes;
mod chart;
mod imports;
mod login;
pub mod openapi;
mod pages;
mod record_pages;
pub mod session;
mod views;

use actix_web::middleware::ErrorHandlers;
use actix_web::web;

pub use access::{AdminTokens, ApiCaller, PageCaller, Role};

pub fn routes(cfg: &mut web::ServiceConfig) {
    api_routes::register(cfg);
    cfg.service(
        web::scope("/admin")
            .service(
                web::resource("/login")
                    .route(web::get().to(login::form))
                    .route(web::post().to(login::login)),
            )
            .service(
                web::resource("/logout")
                    .route(web::get().to(login::logout))
                    .route(web::post().to(login::logout)),
            )
            .route("", web::get().to(pages::dashboard))
            .route("/", web::get().to(pages::dashboard))
            .route("/outbox", web::get().to(pages::outbox))
            .route("/outbox/{id}", web::get().to(pages::row))
            .route("/outbox/{id}/retry", web::post().to(pages::retry))
            .route("/outbox/{id}/cancel", web::post().to(pages::cancel))
            .route("/outbox/{id}/resend", web::post().to(pages::resend))
            .route("/inbound", web::get().to(record_pages::records))
            .route("/inbound/remap", web::post().to(record_pages::remap_all))
            .route("/inbound/{id}", web::get().to(pages::inbound))
            .route("/inbound/{id}/remap", web::post().to(pages::remap))
            .route("/imports", web::get().to(imports::page))
            .route("/imports/{id}/cancel", web::post().to(imports::cancel_page))
            .route("/erase", web::get().to(record_pages::erase_form))
            .route("/erase", web::post().to(record_pages::erase))
            .route("/issues", web::get().to(pages::issues))
            .route("/issues/rows", web::get().to(pages::issue_rows))
            .route("/issues/replay", web::post().to(pages::replay_issue))
            .route("/issues/remap", web::post().to(record_pages::remap_issue))
            .route("/jobs/{id}", web::get().to(record_pages::job))
            .default_service(web::to(api_routes::unknown_page))
            .wrap(ErrorHandlers::new().default_handler(api_routes::errors_as_json)),
    );
}
