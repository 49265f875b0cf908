//! Imports in the admin API (`/admin/api/imports...`) and the console (`/admin/imports`):
//! the list, one import, and cancelling one through `support::imports` (audited). Each
//! API handler's `#[utoipa::path]` is also its route (`api_routes`).

use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::json;

use super::access::{ApiCaller, PageCaller};
use super::pages::{html, refused, see_other};
use super::views::{Nav, when};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::imports::ImportRow;
use crate::support::imports;

use super::openapi::ErrorBody;

/// `GET /admin/api/imports`: the latest imports, newest first.
#[utoipa::path(get, path = "/admin/api/imports", tag = "imports",
    description = "The latest historical imports (`webengage-bridge import`), newest first, with their counts.",
    responses(
        (status = 200, description = "a list of imports: id, source, files, state, counts per status", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
    ))]
pub async fn list(_: ApiCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(imports::list(&state.pool).await?))
}

/// `GET /admin/api/imports/{id}`: one import with its outbox rows by status.
#[utoipa::path(get, path = "/admin/api/imports/{id}", tag = "imports",
    description = "One import with its outbox rows by status.",
    params(("id" = i64, Path, description = "the import")),
    responses(
        (status = 200, description = "the import and its outbox rows by status", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 404, description = "no such import", body = ErrorBody),
    ))]
pub async fn show(
    _: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(imports::show(&state.pool, *id).await?))
}

/// `POST /admin/api/imports/{id}/cancel`: stops the import, cancels its undelivered rows.
#[utoipa::path(post, path = "/admin/api/imports/{id}/cancel", tag = "imports",
    description = "Stops the import and cancels its undelivered outbox rows (admins; audited).",
    params(("id" = i64, Path, description = "the import")),
    responses(
        (status = 200, description = "`{\"cancelled\": rows}`", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 404, description = "no such import", body = ErrorBody),
        (status = 409, description = "the action would change nothing, with the reason", body = ErrorBody),
    ))]
pub async fn cancel(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let rows = imports::cancel(&state.pool, role, *id).await?;
    Ok(HttpResponse::Ok().json(json!({ "cancelled": rows })))
}

#[derive(Template)]
#[template(path = "admin/imports.html")]
pub struct ImportsPage {
    pub nav: Nav,
    pub imports: Vec<ImportView>,
}

pub struct ImportView {
    pub row: ImportRow,
    pub state: &'static str,
    pub started: String,
    pub files: String,
}

/// What a cancel reports back through its redirect: a count only.
#[derive(Debug, Default, Deserialize)]
pub struct CancelledQuery {
    cancelled: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct CancelForm {
    #[serde(default)]
    csrf: String,
}

/// `GET /admin/imports`
pub async fn page(
    caller: PageCaller,
    state: web::Data<AppState>,
    query: web::Query<CancelledQuery>,
) -> Result<HttpResponse, ApiError> {
    let notice = query
        .cancelled
        .map(|n| format!("Import cancelled: {n} undelivered row(s) will never be sent."));
    let imports = imports::list(&state.pool)
        .await?
        .into_iter()
        .map(|row| ImportView {
            state: row.state.as_str(),
            started: when(row.started_at),
            files: row.files.join(", "),
            row,
        })
        .collect();
    html(&ImportsPage {
        nav: Nav::new(caller.role, caller.csrf.clone(), notice),
        imports,
    })
}

/// `POST /admin/imports/{id}/cancel` (the console's button).
pub async fn cancel_page(
    caller: PageCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    form: web::Form<CancelForm>,
) -> Result<HttpResponse, ApiError> {
    caller.check_csrf(&form.csrf)?;
    match imports::cancel(&state.pool, caller.role, *id).await {
        Ok(rows) => Ok(see_other(&format!("/admin/imports?cancelled={rows}"))),
        Err(e) => refused(&caller, e, "/admin/imports"),
    }
}
