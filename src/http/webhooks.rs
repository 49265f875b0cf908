//! `POST /webhooks/{source}`: read the body (bounded), hand it to `ingest`, answer in
//! the dialect the CRM understands. Every 2xx is sent only after the commit.

use actix_web::http::Method;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde_json::json;
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::ApiError;
use crate::ingest::spool::{Spool, SpoolEntry};
use crate::ingest::{self, Accepted};
use crate::mapping::MappingSet;
use crate::source::{InboundRequest, SourceFormat, salesforce};
use crate::store::inbound::IngestCounts;

/// `/webhooks/{source}`, routed by hand under the `/webhooks` scope: actix matches a
/// `{source}` pattern with a regex, 4% of the bridge's CPU per webhook in the ingest
/// profile, where the scope's static prefix is a string comparison. Answers as the
/// pattern did: 404 for a path of more than one segment, 405 for other methods.
pub async fn route(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let source = match request.match_info().unprocessed().strip_prefix('/') {
        Some(source) if !source.is_empty() && !source.contains('/') => source.to_owned(),
        _ => return Ok(HttpResponse::NotFound().finish()),
    };
    match *request.method() {
        Method::POST => receive(&source, request, payload, state, request_id).await,
        Method::HEAD => Ok(probe(&source, &state)),
        _ => Ok(HttpResponse::MethodNotAllowed().finish()),
    }
}

async fn receive(
    source: &str,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let mappings = state.registry.current();
    let format = mappings.get(source).map(|m| m.format).ok_or_else(|| {
        ApiError::UnknownSource(format!("no mapping file defines the source `{source}`"))
    })?;
    let body = read_body(&request, payload, state.max_body).await?;
    let inbound = inbound_request(&request, body);
    let request_id = request_id.to_string();
    let spool = state
        .spool
        .as_ref()
        .filter(|_| format == SourceFormat::LeadSquared);
    // Behind a spool backlog, new requests queue too, so records keep the CRM's order.
    if let Some(spool) = spool.filter(|s| s.has_backlog()) {
        return spool_request(spool, &mappings, source, &inbound, &request_id).await;
    }
    let outcome =
        ingest::accept_webhook(&state.ingest, &mappings, source, &inbound, &request_id).await;
    if let (Some(spool), Err(ingest::IngestError::Storage(cause))) = (spool, &outcome) {
        tracing::warn!(error = %cause, source = %source, request_id = %request_id, "Postgres unavailable; spooling the webhook");
        return spool_request(spool, &mappings, source, &inbound, &request_id).await;
    }
    record_outcome(source, &outcome);
    match outcome {
        Ok(accepted) => Ok(answer(accepted)),
        Err(ingest::IngestError::Storage(cause)) => {
            tracing::error!(error = %cause, source = %source, request_id = %request_id, "storing a webhook failed");
            Err(match format {
                SourceFormat::SalesforceOutbound => ApiError::SoapFault,
                _ => ApiError::Unavailable,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Authenticates, appends to the spool (fsynced), and only then answers 200.
async fn spool_request(
    spool: &Spool,
    mappings: &MappingSet,
    source: &str,
    inbound: &InboundRequest,
    request_id: &str,
) -> Result<HttpResponse, ApiError> {
    ingest::authenticate(mappings, source, inbound)?;
    if let Err(e) = spool
        .append(&SpoolEntry::new(source, request_id, inbound))
        .await
    {
        tracing::error!(error = %e, request_id = %request_id, "cannot write to the spool");
        return Err(ApiError::Unavailable);
    }
    metrics::counter!("bridge_webhooks_total", "source" => source.to_owned(), "outcome" => "spooled")
        .increment(1);
    Ok(HttpResponse::Ok().json(leadsquared_answer(
        "Success",
        "spooled",
        &IngestCounts::default(),
    )))
}

/// Counts webhooks by source and outcome, and records by what became of them.
fn record_outcome(source: &str, outcome: &Result<Accepted, ingest::IngestError>) {
    let label = match outcome {
        Ok(Accepted::Stored { counts, .. }) => {
            for (status, n) in [
                ("accepted", counts.accepted),
                ("duplicate", counts.duplicates),
                ("ignored", counts.ignored),
                ("stale", counts.stale),
                ("failed", counts.failed),
            ] {
                // A series appears with its first record: no registry lookup per request
                // for the four counts that are zero.
                if n > 0 {
                    metrics::counter!("bridge_records_total", "source" => source.to_owned(), "status" => status).increment(u64::from(n));
                }
            }
            "stored"
        }
        Ok(Accepted::MalformedStored { .. }) => "malformed",
        Err(ingest::IngestError::UnknownSource(_)) => return,
        Err(ingest::IngestError::Unauthorized(_)) => "unauthorized",
        Err(ingest::IngestError::Malformed(_)) => "malformed",
        Err(ingest::IngestError::Storage(_)) => "storage_error",
    };
    metrics::counter!("bridge_webhooks_total", "source" => source.to_owned(), "outcome" => label)
        .increment(1);
}

/// `HEAD /webhooks/{source}`: LeadSquared checks a webhook URL this way.
fn probe(source: &str, state: &AppState) -> HttpResponse {
    match state.registry.current().get(source) {
        Some(_) => HttpResponse::Ok().finish(),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Reads the body while counting, so an oversized one is refused without being buffered whole.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn inbound_request(request: &HttpRequest, body: Vec<u8>) -> InboundRequest {
    let mut headers = std::collections::HashMap::new();
    for (name, value) in request.headers() {
        if let Ok(value) = value.to_str() {
            headers
                .entry(name.as_str().to_ascii_lowercase())
                .or_insert_with(|| value.to_owned());
        }
    }
    InboundRequest {
        headers,
        query: request.query_string().to_owned(),
        body,
    }
}

/// Each format's way of saying "stored".
fn answer(accepted: Accepted) -> HttpResponse {
    match accepted {
        Accepted::Stored {
            format: SourceFormat::SalesforceOutbound,
            ..
        } => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/xml; charset=utf-8"))
            .body(salesforce::ACK),
        Accepted::Stored {
            format: SourceFormat::LeadSquared,
            counts,
        } => HttpResponse::Ok().json(leadsquared_answer(
            "Success",
            &status_reason(&counts),
            &counts,
        )),
        Accepted::Stored { counts, .. } => HttpResponse::Ok().json(counts),
        Accepted::MalformedStored {
            format: SourceFormat::LeadSquared,
            reason,
        } => HttpResponse::Ok().json(leadsquared_answer(
            "Error",
            &reason,
            &IngestCounts::default(),
        )),
        Accepted::MalformedStored { reason, .. } => HttpResponse::BadRequest()
            .json(json!({"error": {"code": "malformed_body", "message": reason}})),
    }
}

/// LeadSquared may disable a webhook that answers other than 200, so it always gets
/// 200 with a status body once its request is stored.
fn leadsquared_answer<'a>(
    status: &'a str,
    reason: &'a str,
    counts: &'a IngestCounts,
) -> LeadSquaredAnswer<'a> {
    LeadSquaredAnswer {
        status,
        reason,
        counts,
    }
}

/// `{"Status": …, "StatusReason": …, "accepted": …, …}`, written straight from the counts.
#[derive(serde::Serialize)]
struct LeadSquaredAnswer<'a> {
    #[serde(rename = "Status")]
    status: &'a str,
    #[serde(rename = "StatusReason")]
    reason: &'a str,
    #[serde(flatten)]
    counts: &'a IngestCounts,
}

fn status_reason(c: &IngestCounts) -> String {
    format!(
        "{} accepted, {} duplicate, {} ignored, {} stale, {} failed",
        c.accepted, c.duplicates, c.ignored, c.stale, c.failed
    )
}
