//! The root span of every request, as tracing-actix-web's default minus the query
//! string: a URL may carry a webhook secret (`?token=`), and logs must never show one.

use actix_web::HttpMessage;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing::field::Empty;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

pub struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        // A webhook's span is at DEBUG: at the default INFO level, creating and
        // formatting a span for every webhook cost about a sixth of the bridge's CPU
        // in the ingest benchmark. What the webhook path logs names its request id.
        if request.path().starts_with("/webhooks/") && !tracing::enabled!(tracing::Level::DEBUG) {
            return Span::none();
        }
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let route = request.match_pattern().unwrap_or_else(|| "default".into());
        let client_ip = request
            .connection_info()
            .realip_remote_addr()
            .unwrap_or("")
            .to_owned();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %route,
            // The path only: the query string may hold a secret.
            http.target = %request.path(),
            http.client_ip = %client_ip,
            http.status_code = Empty,
            otel.status_code = Empty,
            request_id = %request_id,
            exception.message = Empty,
            exception.details = Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
