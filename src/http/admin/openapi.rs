//! `GET /admin/api/openapi.json`: the OpenAPI 3.1 document of the admin API, built from
//! the route table (`api_routes`) and the handlers' `#[utoipa::path]` attributes.
//!
//! It takes the same Bearer tokens as every other admin API route (admin or viewer):
//! nothing under `/admin/api` answers an anonymous caller, and while the admin surface
//! is off the document is a 404 like the rest.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use super::access::ApiCaller;
use super::api_routes;

/// Every error answer: `{"error": {"code": "not_found", "message": "..."}}`.
#[derive(ToSchema)]
#[allow(dead_code)] // a schema only: `ApiError` writes these
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ErrorDetail {
    /// `bad_request`, `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `conflict`, `payload_too_large`, `unsupported_media_type`, `unavailable`, ...
    code: String,
    message: String,
}

/// The rows one action changed, under the action's name: `{"retried": 1}`,
/// `{"cancelled": 1}` or `{"resent": 1}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Counted {
    retried: Option<u64>,
    cancelled: Option<u64>,
    resent: Option<u64>,
}

/// `{"replayed": N}`, or with `dry_run` `{"dry_run": true, "would_replay": N}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ReplayAnswer {
    replayed: Option<u64>,
    dry_run: Option<bool>,
    would_replay: Option<u64>,
}

/// `{"job": {...}}` (202), or with `dry_run` `{"dry_run": true, "would_remap": N}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RemapAnswer {
    job: Option<crate::store::jobs::Job>,
    dry_run: Option<bool>,
    would_remap: Option<u64>,
}

/// The scheme every operation requires: the admin or the viewer token.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components.get_or_insert_default().add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "BRIDGE_ADMIN_TOKEN (read and act) or BRIDGE_VIEWER_TOKEN (GET only, \
                         personal data masked)",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "webengage-bridge admin API",
        description = "The support API of webengage-bridge: find, inspect, retry, cancel, \
            resend and replay outbox rows; re-map stored CRM records; erase a person. \
            See docs/admin-api.md."
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        Counted,
        ReplayAnswer,
        RemapAnswer,
        super::api::ReplayBody,
        super::api_records::RemapBody,
        crate::support::erase::PersonRequest,
        crate::store::jobs::Job,
        crate::store::support::AuditEntry,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The document: the derived parts plus one path per route of the table.
pub fn build() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.paths = api_routes::paths();
    doc
}

fn rendered() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| build().to_json().expect("the OpenAPI document serialises"))
}

#[utoipa::path(get, path = "/admin/api/openapi.json", tag = "meta",
    description = "This document (OpenAPI 3.1). Every admin API route is in it.",
    responses(
        (status = 200, description = "the OpenAPI document", content_type = "application/json", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
    ))]
pub async fn document(_: ApiCaller) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rendered())
}
