//! `/admin/api/...`: the JSON support API (Bearer only). Each handler turns its request
//! into domain types (`TryFrom`), calls one `support` function, and answers JSON. What
//! a viewer reads is masked exactly as on the pages (`support::view`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;

use super::access::ApiCaller;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::support::{self as store, InboundFilter, OutboxFilter, ReplayFilter};
use crate::store::{InboundStatus, OutboxStatus};
use crate::support::actions::{self, RowAction};
use crate::support::erase::{self, Person, PersonRequest};
use crate::support::jobs;
use crate::support::remap::RemapSelection;
use crate::support::search::{self, SearchTerm, StatusOf};
use crate::support::view::{self, RevealRequest};
use crate::support::{SupportError, remap};

/// The keyset page of a list: `limit` rows older than `before`.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub limit: i64,
    pub before: Option<i64>,
}

/// `GET /admin/api/outbox?status=&source=&user_id=&q=&since=&until=&limit=&before=`
#[derive(Debug, Deserialize)]
pub struct OutboxQuery {
    status: Option<String>,
    source: Option<String>,
    user_id: Option<String>,
    q: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    limit: Option<i64>,
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

/// `GET /admin/api/inbound?status=&source=&limit=&before=`
#[derive(Debug, Deserialize)]
pub struct InboundQuery {
    status: Option<String>,
    source: Option<String>,
    limit: Option<i64>,
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

/// `?reveal=all` or `?reveal=Field,Other` on one row or record: audited for viewers.
#[derive(Debug, Deserialize)]
pub struct RevealQuery {
    reveal: Option<String>,
}

impl TryFrom<RevealQuery> for Option<RevealRequest> {
    type Error = SupportError;

    fn try_from(q: RevealQuery) -> Result<Self, Self::Error> {
        q.reveal.as_deref().map(RevealRequest::try_from).transpose()
    }
}

/// `POST /admin/api/outbox/replay` `{"status": "dead", "source": ..., "since": ..., "dry_run": false}`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    status: Option<String>,
    source: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    since: Option<OffsetDateTime>,
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

pub async fn list_outbox(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    query: web::Query<OutboxQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.into_inner().try_into().map_err(ApiError::from)?;
    let found = store::list_outbox(&state.pool, &filter, page.limit, page.before).await?;
    Ok(HttpResponse::Ok().json(view::outbox_page(&found, &view::default_reveal(role))))
}

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

pub async fn retry(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    act(role, &state, RowAction::Retry, *id, "retried").await
}

pub async fn cancel(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    act(role, &state, RowAction::Cancel, *id, "cancelled").await
}

pub async fn resend(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    act(role, &state, RowAction::Resend, *id, "resent").await
}

pub async fn replay(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    body: Option<web::Json<ReplayBody>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
    let filter = ReplayFilter::try_from(&body)?;
    if body.dry_run {
        let rows = actions::replay_count(&state.pool, &filter).await?;
        return Ok(HttpResponse::Ok().json(json!({ "dry_run": true, "would_replay": rows })));
    }
    let rows = actions::replay(&state.pool, role, &filter).await?;
    Ok(HttpResponse::Ok().json(json!({ "replayed": rows })))
}

pub async fn list_inbound(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    query: web::Query<InboundQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.into_inner().try_into().map_err(ApiError::from)?;
    let found = store::list_inbound(&state.pool, &filter, page.limit, page.before).await?;
    Ok(HttpResponse::Ok().json(view::inbound_page(&found, &view::default_reveal(role))))
}

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
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemapBody {
    status: Option<String>,
    source: Option<String>,
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
pub async fn remap_many(
    ApiCaller(role): ApiCaller,
    state: web::Data<AppState>,
    body: Option<web::Json<RemapBody>>,
) -> Result<HttpResponse, ApiError> {
    let body = body.map(web::Json::into_inner).unwrap_or_default();
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

pub async fn show_job(
    _: ApiCaller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(jobs::job(&state.pool, *id).await?))
}

pub async fn audit_log(_: ApiCaller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(store::recent_audit(&state.pool, 100).await?))
}

/// `POST /admin/api/erase` `{"email": ...}` (or `user`, or `phone`): admin only.
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
