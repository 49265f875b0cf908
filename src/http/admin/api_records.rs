//! `/admin/api/...`: the JSON support API's stored CRM records, background jobs, erasure
//! and audit log (the outbox half is in `api`). Each handler's `#[utoipa::path]` is also
//! its route (`api_routes`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::access::ApiCaller;
use super::api::{PageRequest, RevealQuery};
use super::api_routes::optional_json;
use super::openapi::{ErrorBody, RemapAnswer};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::InboundStatus;
use crate::store::support::{self as store, InboundFilter};
use crate::support::erase::{self, Person, PersonRequest};
use crate::support::jobs;
use crate::support::remap::RemapSelection;
use crate::support::search::{self, StatusOf};
use crate::support::view::{self, RevealRequest};
use crate::support::{SupportError, remap};

/// `GET /admin/api/inbound?status=&source=&limit=&before=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboundQuery {
    /// `mapped`, `ignored`, `stale`, `failed` or `malformed`.
    status: Option<String>,
    source: Option<String>,
    /// Records per page (default 50).
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    before: Option<i64>,
}

impl TryFrom<InboundQuery> for (InboundFilter, PageRequest) {
    type Error = SupportError;

    fn try_from(q: InboundQuery) -> Result<Self, Self::Error> {
        Ok((
            InboundFilter {
                status: search::status(q.status.as_deref(), StatusOf::Inbound)?,
                source: search::value(q.source.as_deref(), "source")?,
            },
            PageRequest {
                limit: q.limit.unwrap_or(50),
                before: q.before,
            },
        ))
    }
}

#[utoipa::path(get, path = "/admin/api/inbound", tag = "inbound",
    description = "Stored CRM records newest first, in keyset pages.",
    params(InboundQuery),
    responses(
        (status = 200, description = "`{\"items\": [...], \"next\": cursor|null}`", body = Object),
        (status = 400, description = "an unknown status", body = ErrorBody),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
    ))]
pub async fn list_inbound(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    query: web::Query<InboundQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.into_inner().try_into().map_err(ApiError::from)?;
    let found = store::list_inbound(&state.pool, &filter, page.limit, page.before).await?;
    Ok(HttpResponse::Ok().json(view::inbound_page(&found, &view::default_reveal(role))))
}

#[utoipa::path(get, path = "/admin/api/inbound/{id}", tag = "inbound",
    description = "One stored CRM record; masked for a viewer unless revealed (audited).",
    params(("id" = i64, Path, description = "the inbound record"), RevealQuery),
    responses(
        (status = 200, description = "the record, with `masked_fields` for a viewer", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 404, description = "no such record", body = ErrorBody),
    ))]
pub async fn show_inbound(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<RevealQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked: Option<RevealRequest> = query.into_inner().try_into().map_err(ApiError::from)?;
    let record = store::inbound_detail(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no inbound record {id}")))?;
    let reveal = view::reveal_for(&state.pool, role, asked, &format!("inbound {id}")).await?;
    Ok(HttpResponse::Ok().json(view::inbound_record(&record, &reveal)))
}

#[utoipa::path(post, path = "/admin/api/inbound/{id}/remap", tag = "inbound",
    description = "Runs one record through today's mappings; its waiting rows are replaced.",
    params(("id" = i64, Path, description = "the inbound record")),
    responses(
        (status = 200, description = "`{\"remapped\": 1, \"operations\": N}`", body = Object),
        (status = 400, description = "a malformed record", body = ErrorBody),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 404, description = "no such record", body = ErrorBody),
    ))]
pub async fn remap_one(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let rows = remap::remap_record_audited(
        &state.pool,
        &state.ingest.types,
        &state.registry.current(),
        *id,
        role,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "remapped": 1, "operations": rows })))
}

/// `POST /admin/api/inbound/remap` `{"status": "failed", "source": ..., "dry_run": false}`
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemapBody {
    /// An inbound status; `failed` by default.
    status: Option<String>,
    source: Option<String>,
    /// Count the records instead of re-mapping them.
    #[serde(default)]
    dry_run: bool,
}

impl TryFrom<&RemapBody> for RemapSelection {
    type Error = SupportError;

    fn try_from(b: &RemapBody) -> Result<Self, Self::Error> {
        Ok(RemapSelection::Matching(InboundFilter {
            status: Some(
                search::status(b.status.as_deref(), StatusOf::Inbound)?
                    .unwrap_or_else(|| InboundStatus::Failed.as_str().to_owned()),
            ),
            source: search::value(b.source.as_deref(), "source")?,
        }))
    }
}

/// Re-maps every stored record matching the filter (default: `failed`) in a background
/// job: 202 with the job, whose progress `GET /admin/api/jobs/{id}` reports.
#[utoipa::path(post, path = "/admin/api/inbound/remap", tag = "inbound",
    description = "Re-maps every matching record in a background job; no body re-maps the \
        `failed` records. A body that does not parse is a 400, never the defaults.",
    request_body(content = Option<RemapBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "with `dry_run`: `{\"dry_run\": true, \"would_remap\": N}`", body = RemapAnswer),
        (status = 202, description = "`{\"job\": {...}}`, with `Location: /admin/api/jobs/{id}`", body = RemapAnswer),
        (status = 400, description = "a body that does not parse, an unknown field or status", body = ErrorBody),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 409, description = "nothing matches", body = ErrorBody),
        (status = 413, description = "a body over 64 KiB", body = ErrorBody),
    ))]
pub async fn remap_many(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: RemapBody = optional_json(&body)?;
    let selection = RemapSelection::try_from(&body)?;
    if body.dry_run {
        let n = selection.count(&state.pool).await?;
        return Ok(HttpResponse::Ok().json(json!({ "dry_run": true, "would_remap": n })));
    }
    let job = jobs::start_remap(
        &state.pool,
        state.ingest.types.clone(),
        state.registry.current(),
        selection,
        role,
    )
    .await?;
    Ok(HttpResponse::Accepted()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/admin/api/jobs/{}", job.id),
        ))
        .json(json!({ "job": job })))
}

#[utoipa::path(get, path = "/admin/api/jobs/{id}", tag = "jobs",
    description = "A background job and its progress.",
    params(("id" = i64, Path, description = "the job")),
    responses(
        (status = 200, description = "the job", body = crate::store::jobs::Job),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 404, description = "no such job", body = ErrorBody),
    ))]
pub async fn show_job(
    _: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(jobs::job(&state.pool, *id).await?))
}

#[utoipa::path(get, path = "/admin/api/audit", tag = "audit",
    description = "The last 100 support actions.",
    responses(
        (status = 200, description = "newest first", body = Vec<crate::store::support::AuditEntry>),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
    ))]
pub async fn audit_log(_: ApiCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(store::recent_audit(&state.pool, 100).await?))
}

/// `POST /admin/api/erase` `{"email": ...}` (or `user`, or `phone`): admin only.
#[utoipa::path(post, path = "/admin/api/erase", tag = "erase",
    description = "Admin only: deletes every stored trace of one person, named by exactly one \
        of `user`, `email`, `phone`; audited without the personal data.",
    request_body(content = PersonRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"erased\": {...}}`", body = Object),
        (status = 400, description = "no one or two people named; a body that does not parse", body = ErrorBody),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 409, description = "the spool holds webhooks not stored yet", body = ErrorBody),
        (status = 413, description = "a body over 64 KiB", body = ErrorBody),
        (status = 415, description = "a body that is not `application/json`", body = ErrorBody),
    ))]
pub async fn erase(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    body: web::Json<PersonRequest>,
) -> Result<HttpResponse, ApiError> {
    let person = Person::try_from(body.into_inner())?;
    let backlog = state.ingest.spool.as_ref().is_some_and(|s| s.has_backlog());
    let erased = erase::erase(&state.pool, role, &person, backlog).await?;
    Ok(HttpResponse::Ok().json(json!({ "erased": erased })))
}
