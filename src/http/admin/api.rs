//! `/admin/api/...`: the JSON support API. Handlers parse the query into filters and call
//! one store or ingest function; every action is written to the audit log.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::support::RowAction;
use crate::store::{self, support};
use crate::store::{InboundStatus, OutboxStatus};
use crate::support::remap;

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub limit: Option<i64>,
    pub before: Option<i64>,
}

pub async fn stats(_: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let stats = store::stats::outbox_stats(&state.pool).await?;
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
    _: Caller,
    state: web::Data<AppState>,
    filter: web::Query<support::OutboxFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page =
        support::list_outbox(&state.pool, &filter, page.limit.unwrap_or(50), page.before).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn show_outbox(
    _: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let detail = support::outbox_detail(&state.pool, *id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no outbox row {id}")))?;
    Ok(HttpResponse::Ok().json(detail))
}

pub async fn retry(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let rows = support::act_on_row(&state.pool, caller.0.as_str(), RowAction::Retry, *id).await?;
    Ok(HttpResponse::Ok().json(json!({ "retried": rows })))
}

pub async fn cancel(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let rows = support::act_on_row(&state.pool, caller.0.as_str(), RowAction::Cancel, *id).await?;
    Ok(HttpResponse::Ok().json(json!({ "cancelled": rows })))
}

pub async fn replay(
    caller: Caller,
    state: web::Data<AppState>,
    filter: web::Json<support::ReplayFilter>,
) -> Result<HttpResponse, ApiError> {
    let rows = support::replay(&state.pool, &filter).await?;
    let target = format!(
        "status={} source={} since={}",
        filter
            .status
            .as_deref()
            .unwrap_or(OutboxStatus::Dead.as_str()),
        filter.source.as_deref().unwrap_or("*"),
        filter
            .since
            .map(|t| t.to_string())
            .unwrap_or_else(|| "*".into())
    );
    support::audit(&state.pool, caller.0.as_str(), "replay", &target, rows).await?;
    Ok(HttpResponse::Ok().json(json!({ "replayed": rows })))
}

pub async fn list_inbound(
    _: Caller,
    state: web::Data<AppState>,
    filter: web::Query<support::InboundFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page =
        support::list_inbound(&state.pool, &filter, page.limit.unwrap_or(50), page.before).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn remap_one(
    caller: Caller,
    state: web::Data<AppState>,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let rows = remap::remap_record_audited(
        &state.pool,
        &state.ingest.types,
        &state.registry.current(),
        *id,
        caller.0.as_str(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({ "remapped": 1, "operations": rows })))
}

/// Re-maps every stored record matching the filter (default: `failed`), at most 10,000 per call.
pub async fn remap_many(
    caller: Caller,
    state: web::Data<AppState>,
    filter: web::Json<support::InboundFilter>,
) -> Result<HttpResponse, ApiError> {
    let status = filter
        .status
        .as_deref()
        .unwrap_or(InboundStatus::Failed.as_str());
    let summary = remap::remap_matching(
        &state.pool,
        &state.ingest.types,
        &state.registry.current(),
        status,
        filter.source.as_deref(),
        10_000,
    )
    .await?;
    let target = format!(
        "status={status} source={}",
        filter.source.as_deref().unwrap_or("*")
    );
    support::audit(
        &state.pool,
        caller.0.as_str(),
        "remap",
        &target,
        summary.remapped,
    )
    .await?;
    Ok(HttpResponse::Ok().json(summary))
}

pub async fn audit_log(_: Caller, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(support::recent_audit(&state.pool, 100).await?))
}
