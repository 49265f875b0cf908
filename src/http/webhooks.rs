//! `POST /webhooks/{source}`: an adapter. It asks `ingest` to admit the request's head,
//! reads the body within its limits, hands it to `ingest`, and writes the answer.
//! Every 2xx is sent only after the commit (or the spool's fsync).
//!
//! Reading the body, every byte is hostile: memory follows what arrived (never what
//! `Content-Length` declares), all webhooks together hold at most
//! `BRIDGE_MAX_INFLIGHT_BYTES` of bodies (503 and `Retry-After` past it), and a body
//! must arrive within `BRIDGE_BODY_TIMEOUT` (408).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use tracing::Instrument;
use tracing_actix_web::RequestId;

use super::AppState;
use super::error::ApiError;
use crate::ingest::Answer;
use crate::source::{InboundRequest, salesforce};

/// The limits on reading webhook bodies (`BRIDGE_MAX_BODY`, `BRIDGE_BODY_TIMEOUT`,
/// `BRIDGE_MAX_INFLIGHT_BYTES`); cheap to clone, the in-flight count is shared.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    pub max_body: usize,
    pub timeout: Duration,
    inflight: Arc<InflightBytes>,
}

impl BodyLimits {
    /// The in-flight budget is at least one largest body, or no such body could pass.
    pub fn new(max_body: usize, timeout: Duration, max_inflight: usize) -> Self {
        BodyLimits {
            max_body,
            timeout,
            inflight: Arc::new(InflightBytes {
                limit: max_inflight.max(max_body),
                used: AtomicUsize::new(0),
            }),
        }
    }
}

/// Body bytes held by every webhook request being read or processed.
#[derive(Debug)]
struct InflightBytes {
    limit: usize,
    used: AtomicUsize,
}

/// A request's share of the in-flight bytes, given back when it is dropped.
struct Reservation<'a> {
    budget: &'a InflightBytes,
    bytes: usize,
}

impl Reservation<'_> {
    /// Takes `n` more bytes from the budget; false when that would pass the limit.
    fn grow(&mut self, n: usize) -> bool {
        let reserved = self
            .budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n)
                    .filter(|total| *total <= self.budget.limit)
            });
        if reserved.is_ok() {
            self.bytes += n;
        }
        reserved.is_ok()
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// `/webhooks/{source}`, routed by hand under the `/webhooks` scope: actix matches a
/// `{source}` pattern with a regex, 4% of the bridge's CPU per webhook in the ingest
/// profile, where the scope's static prefix is a string comparison. Answers as the
/// pattern did: 404 for a path of more than one segment, 405 for other methods; every
/// error with its JSON body (a HEAD answer carries the headers only).
pub async fn route(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let source = match request.match_info().unprocessed().strip_prefix('/') {
        Some(source) if !source.is_empty() && !source.contains('/') => source.to_owned(),
        _ => {
            return Err(ApiError::NotFound(
                "webhooks are posted to /webhooks/{source}".to_owned(),
            ));
        }
    };
    match *request.method() {
        Method::POST => {
            // One trace per webhook (when traces are exported), continuing the CRM's.
            let span =
                crate::traced_span!("webhook", otel.kind = "server", source = %source, %request_id);
            let traceparent = request.headers().get("traceparent");
            crate::telemetry::continue_trace(&span, traceparent.and_then(|v| v.to_str().ok()));
            receive(&source, request, payload, state, request_id)
                .instrument(span)
                .await
        }
        // LeadSquared checks a webhook URL this way.
        Method::HEAD if state.ingest.knows(&source) => Ok(HttpResponse::Ok().finish()),
        Method::HEAD => Err(crate::ingest::IngestError::UnknownSource(source).into()),
        _ => Err(ApiError::MethodNotAllowed {
            method: request.method().to_string(),
            allow: "POST, HEAD".to_owned(),
        }),
    }
}

async fn receive(
    source: &str,
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let mut inbound = request_head(&request);
    let admitted = state.ingest.admit(source, &inbound)?;
    let limits = &state.webhooks;
    let mut reservation = Reservation {
        budget: &limits.inflight,
        bytes: 0,
    };
    inbound.body = read_body(&request, payload, limits, &mut reservation).await?;
    let answer = state
        .ingest
        .receive(admitted, inbound, &request_id.to_string())
        .await?;
    Ok(match answer {
        Answer::SoapAck => HttpResponse::Ok()
            .insert_header((CONTENT_TYPE, "text/xml; charset=utf-8"))
            .body(salesforce::ACK),
        Answer::LeadSquared(status) => HttpResponse::Ok().json(status),
        Answer::Counts(counts) => HttpResponse::Ok().json(counts),
        Answer::Spooled(counts) => HttpResponse::Ok().json(counts),
    })
}

/// Reads the body within the limits: size (413), in-flight budget (503), time (408).
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limits: &BodyLimits,
    reservation: &mut Reservation<'_>,
) -> Result<Vec<u8>, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body as u64) {
        return Err(ApiError::PayloadTooLarge(limits.max_body));
    }
    let read = async {
        let mut body = Vec::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
            if body.len() + chunk.len() > limits.max_body {
                return Err(ApiError::PayloadTooLarge(limits.max_body));
            }
            if !reservation.grow(chunk.len()) {
                return Err(ApiError::Busy(
                    "too many webhook bodies are being received at once (BRIDGE_MAX_INFLIGHT_BYTES); retry shortly".to_owned(),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(limits.timeout, read)
        .await
        .unwrap_or(Err(ApiError::RequestTimeout(limits.timeout)))
}

/// The request as the sources see it, without its body yet.
fn request_head(request: &HttpRequest) -> InboundRequest {
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
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_flight_budget_is_shared_and_given_back() {
        let limits = BodyLimits::new(10, Duration::from_secs(1), 25);
        let mut a = Reservation {
            budget: &limits.inflight,
            bytes: 0,
        };
        let mut b = Reservation {
            budget: &limits.inflight,
            bytes: 0,
        };
        assert!(a.grow(10) && a.grow(10));
        assert!(b.grow(5));
        assert!(!b.grow(1), "25 bytes are taken");
        drop(a);
        assert!(b.grow(20));
        drop(b);
        assert_eq!(limits.inflight.used.load(Ordering::Acquire), 0);
        // Never below one largest body.
        assert_eq!(
            BodyLimits::new(100, Duration::from_secs(1), 1)
                .inflight
                .limit,
            100
        );
    }
}
