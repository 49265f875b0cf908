//! `/admin/api/...`: the JSON support API (Bearer only), its outbox half (the inbound
//! records, jobs, erasure and audit are in `api_records`). Each handler turns its request
//! into domain types (`TryFrom`), calls one `support` function, and answers JSON. What
//! a viewer reads is masked exactly as on the pages (`support::view`). Each handler's
//! `#[utoipa::path]` is also its route (`api_routes`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::access::ApiCaller;
use super::api_routes::optional_json;
use super::openapi::{Counted, ErrorBody, ReplayAnswer};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::OutboxStatus;
use crate::store::support::{self as store, OutboxFilter, ReplayFilter};
use crate::support::SupportError;
use crate::support::actions::{self, RowAction};
use crate::support::search::{self, SearchTerm, StatusOf};
use crate::support::view::{self, RevealRequest};

/// The keyset page of a list: `limit` rows older than `before`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub before: Option<i64>,
}

/// `GET /admin/api/outbox?status=&source=&user_id=&q=&since=&until=&limit=&before=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OutboxQuery {
    /// `pending`, `in_flight`, `delivered`, `dead` or `cancelled`.
    status: Option<String>,
    source: Option<String>,
    user_id: Option<String>,
    /// 3 to 200 characters: an email, a phone (its last ten digits) or a CRM id in the
    /// payload or the CRM record. At most 10,000 rows are read per page: follow `next`.
    q: Option<String>,
    /// RFC 3339.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// RFC 3339.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<OffsetDateTime>,
    /// Rows per page (default 50).
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    before: Option<i64>,
}

impl TryFrom<OutboxQuery> for (OutboxFilter, PageRequest) {
    type Error = SupportError;

    fn try_from(q: OutboxQuery) -> Result<Self, Self::Error> {
        Ok((
            OutboxFilter {
                status: search::status(q.status.as_deref(), StatusOf::Outbox)?,
                source: search::value(q.source.as_deref(), "source")?,
                user_id: search::value(q.user_id.as_deref(), "user_id")?,
                q: SearchTerm::free_text(q.q.as_deref(), "q")?.map(SearchTerm::into_inner),
                since: q.since,
                until: q.until,
            },
            PageRequest {
                limit: q.limit.unwrap_or(50),
                before: q.before,
            },
        ))
    }
}

/// `?reveal=all` or `?reveal=Field,Other` on one row or record: audited for viewers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevealQuery {
    /// `all`, or field names from the answer's `masked_fields`, comma-separated.
    reveal: Option<String>,
}

impl TryFrom<RevealQuery> for Option<RevealRequest> {
    type Error = SupportError;

    fn try_from(q: RevealQuery) -> Result<Self, Self::Error> {
        q.reveal.as_deref().map(RevealRequest::try_from).transpose()
    }
}

/// `POST /admin/api/outbox/replay` `{"status": "dead", "source": ..., "since": ..., "dry_run": false}`
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// `dead` (the default) or `cancelled`.
    status: Option<String>,
    source: Option<String>,
    /// RFC 3339: rows created since then.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    since: Option<OffsetDateTime>,
    /// Count the rows instead of replaying them.
    #[serde(default)]
    dry_run: bool,
}

impl TryFrom<&ReplayBody> for ReplayFilter {
    type Error = SupportError;

    fn try_from(b: &ReplayBody) -> Result<Self, Self::Error> {
        let status = match b.status.as_deref().map(str::trim) {
            None => OutboxStatus::Dead,
            Some(name) => OutboxStatus::parse(name)
                .filter(|s| s.can_replay())
                .ok_or_else(|| {
                    SupportError::Invalid(format!(
                        "replay takes `dead` or `cancelled` rows, not `{}`",
                        name.escape_debug()
                    ))
                })?,
        };
        Ok(ReplayFilter {
            status: Some(status.as_str().to_owned()),
            source: search::value(b.source.as_deref(), "source")?,
            since: b.since,
        })
    }
}

#[utoipa::path(get, path = "/admin/api/stats", tag = "stats",
    description = "Counts per status, the oldest pending age, the backlog per kind with the \
        delivery rate and the time to drain, the delivery state, the loaded mappings.",
    responses(
        (status = 200, description = "the counts", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
    ))]
pub async fn stats(_: ApiCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = crate::store::stats::outbox_stats(&state.pool).await?;
    let delivery = crate::http::health::delivery_detail(&state).await;
    let mappings = state.registry.current();
    Ok(HttpResponse::Ok().json(json!({
        "outbox": stats.by_status,
        "oldest_pending_age_seconds": stats.oldest_pending_age_seconds,
        "inbound": stats.inbound_by_status,
        "backlog": stats.backlog,
        "delivery": delivery,
        "mappings": {
            "sources": mappings.source_ids().collect::<Vec<_>>(),
            "last_reload_error": state.registry.last_error(),
        },
    })))
}

#[utoipa::path(get, path = "/admin/api/outbox", tag = "outbox",
    description = "Outbox rows newest first, in keyset pages.",
    params(OutboxQuery),
    responses(
        (status = 200, description = "`{\"items\": [...], \"next\": cursor|null}`", body = Object),
        (status = 400, description = "an unknown status or a bad search term", body = ErrorBody),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
    ))]
pub async fn list_outbox(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    query: web::Query<OutboxQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.into_inner().try_into().map_err(ApiError::from)?;
    let found = store::list_outbox(&state.pool, &filter, page.limit, page.before).await?;
    Ok(HttpResponse::Ok().json(view::outbox_page(&found, &view::default_reveal(role))))
}

#[utoipa::path(get, path = "/admin/api/outbox/{id}", tag = "outbox",
    description = "One row: body, status, attempts log, its inbound record; masked for a viewer \
        unless revealed (audited).",
    params(("id" = i64, Path, description = "the outbox row"), RevealQuery),
    responses(
        (status = 200, description = "the row, with `masked_fields` for a viewer", body = Object),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 404, description = "no such row", body = ErrorBody),
    ))]
pub async fn show_outbox(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
    query: web::Query<RevealQuery>,
) -> Result<HttpResponse, ApiError> {
    let asked: Option<RevealRequest> = query.into_inner().try_into().map_err(ApiError::from)?;
    let detail = store::outbox_detail(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no outbox row {id}")))?;
    let reveal = view::reveal_for(&state.pool, role, asked, &format!("outbox {id}")).await?;
    Ok(HttpResponse::Ok().json(view::outbox_detail(&detail, &reveal)))
}

async fn act(
    role: crate::support::Role,
    state: &AppState,
    action: RowAction,
    id: i64,
    answer: &str,
) -> Result<HttpResponse, ApiError> {
    let rows = actions::act_on_row(&state.pool, role, action, id).await?;
    Ok(HttpResponse::Ok().json(json!({ answer: rows })))
}

#[utoipa::path(post, path = "/admin/api/outbox/{id}/retry", tag = "outbox",
    description = "A waiting, dead or cancelled row is due now; audited.",
    params(("id" = i64, Path, description = "the outbox row")),
    responses(
        (status = 200, description = "`{\"retried\": 1}`", body = Counted),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 404, description = "no such row", body = ErrorBody),
        (status = 409, description = "the action would change nothing, with the reason", body = ErrorBody),
    ))]
pub async fn retry(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    act(role, &state, RowAction::Retry, *id, "retried").await
}

#[utoipa::path(post, path = "/admin/api/outbox/{id}/cancel", tag = "outbox",
    description = "A waiting or dead row is never sent; audited.",
    params(("id" = i64, Path, description = "the outbox row")),
    responses(
        (status = 200, description = "`{\"cancelled\": 1}`", body = Counted),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 404, description = "no such row", body = ErrorBody),
        (status = 409, description = "the action would change nothing, with the reason", body = ErrorBody),
    ))]
pub async fn cancel(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    act(role, &state, RowAction::Cancel, *id, "cancelled").await
}

#[utoipa::path(post, path = "/admin/api/outbox/{id}/resend", tag = "outbox",
    description = "A delivered row goes out again under a fresh `x-request-id`; audited.",
    params(("id" = i64, Path, description = "the outbox row")),
    responses(
        (status = 200, description = "`{\"resent\": 1}`", body = Counted),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 404, description = "no such row", body = ErrorBody),
        (status = 409, description = "the action would change nothing, with the reason", body = ErrorBody),
    ))]
pub async fn resend(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    act(role, &state, RowAction::Resend, *id, "resent").await
}

#[utoipa::path(post, path = "/admin/api/outbox/replay", tag = "outbox",
    description = "Every matching dead (or cancelled) row is due now, in one statement; \
        no body replays every dead row. A body that does not parse is a 400, never the defaults.",
    request_body(content = Option<ReplayBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "`{\"replayed\": N}` or `{\"dry_run\": true, \"would_replay\": N}`", body = ReplayAnswer),
        (status = 400, description = "a body that does not parse, an unknown field or status", body = ErrorBody),
        (status = 401, description = "no or a wrong token", body = ErrorBody),
        (status = 403, description = "the viewer token", body = ErrorBody),
        (status = 413, description = "a body over 64 KiB", body = ErrorBody),
    ))]
pub async fn replay(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: ReplayBody = optional_json(&body)?;
    let filter = ReplayFilter::try_from(&body)?;
    if body.dry_run {
        let rows = actions::replay_count(&state.pool, &filter).await?;
        return Ok(HttpResponse::Ok().json(json!({ "dry_run": true, "would_replay": rows })));
    }
    let rows = actions::replay(&state.pool, role, &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "replayed": rows })))
}
