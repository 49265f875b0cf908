//! The one place where errors become HTTP answers: `{"error": {"code", "message"}}`.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use actix_web::{HttpResponse, ResponseError};

use crate::ingest::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    UnknownSource(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A method the route does not serve; the header `Allow` lists those it does.
    #[error("{method} is not allowed here; use {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A support action that would change nothing, with the reason.
    #[error("{0}")]
    Conflict(String),
    /// A page asked for without a session: the browser is sent to the login form.
    #[error("log in first")]
    LoginRequired,
    #[error("too many login attempts; wait a minute")]
    TooManyRequests,
    /// A bug (e.g. a template that does not render); details go to the log only.
    #[error("internal error")]
    Internal,
    #[error("the body is larger than the limit of {0} bytes")]
    PayloadTooLarge(usize),
    /// A webhook body that cannot be parsed, kept as a `malformed` record.
    #[error("{0}")]
    MalformedBody(String),
    #[error(
        "the body holds more than {0} records; send at most {0} per request (BRIDGE_MAX_RECORDS)"
    )]
    TooManyRecords(usize),
    #[error("the body did not arrive within {0:?} (BRIDGE_BODY_TIMEOUT)")]
    RequestTimeout(std::time::Duration),
    /// The service is busy (webhook bodies in flight, parsing); retry shortly.
    #[error("{0}")]
    Busy(String),
    #[error("the database is unavailable; retry later")]
    Unavailable,
    /// Salesforce reads only SOAP: a storage failure is a SOAP fault, so it retries.
    #[error("the database is unavailable; retry later")]
    SoapFault,
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownSource(_) => "unknown_source",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Conflict(_) => "conflict",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::LoginRequired => "login_required",
            ApiError::TooManyRequests => "too_many_requests",
            ApiError::Internal => "internal",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::TooManyRecords(_) => "too_many_records",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::Busy(_) => "busy",
            ApiError::Unavailable | ApiError::SoapFault => "unavailable",
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::UnknownSource(_) => ApiError::UnknownSource(e.to_string()),
            IngestError::Unauthorized(_) => ApiError::Unauthorized(e.to_string()),
            IngestError::Malformed { reason, kept: true } => ApiError::MalformedBody(reason),
            IngestError::Malformed {
                reason,
                kept: false,
            } => ApiError::BadRequest(reason),
            IngestError::TooManyRecords { limit } => ApiError::TooManyRecords(limit),
            IngestError::Busy(_) => ApiError::Busy(e.to_string()),
            // Ingest logs these, with the request id.
            IngestError::Unavailable => ApiError::Unavailable,
            IngestError::SoapFault => ApiError::SoapFault,
            IngestError::Refused => ApiError::Internal,
        }
    }
}

/// Any path no route serves: a JSON 404 like every other error (the contract).
pub async fn no_route(request: actix_web::HttpRequest) -> HttpResponse {
    ApiError::NotFound(format!("nothing is served at {}", request.path())).error_response()
}

/// For `ErrorHandlers::default_handler`: an error answer actix wrote itself, with an
/// empty or plain-text body (a resource's 405, a failed extractor, a payload limit),
/// gets the contract's JSON body with the error's own message, keeping its status and
/// the headers that tell the caller what to do (`Allow`, `Retry-After`,
/// `WWW-Authenticate`). Answers of another type (JSON, HTML pages, SOAP) pass unchanged.
pub fn json_error_body<B: actix_web::body::MessageBody + 'static>(
    response: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(
        json_error_answer(response),
    ))
}

/// [`json_error_body`]'s answer.
pub fn json_error_answer<B: actix_web::body::MessageBody + 'static>(
    response: actix_web::dev::ServiceResponse<B>,
) -> actix_web::dev::ServiceResponse<actix_web::body::EitherBody<B>> {
    use actix_web::body::BodySize;
    use actix_web::http::header;
    let empty = matches!(
        response.response().body().size(),
        BodySize::None | BodySize::Sized(0)
    );
    let plain = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !empty && !plain {
        return response.map_into_left_body();
    }
    let status = response.status();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = match response.response().error() {
        Some(e) => e.to_string(),
        None => reason.to_owned(),
    };
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let (request, old) = response.into_parts();
    let mut answer = HttpResponse::build(status)
        .json(serde_json::json!({"error": {"code": code, "message": message}}));
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = old.headers().get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    actix_web::dev::ServiceResponse::new(request, answer).map_into_right_body()
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "a database call failed");
        ApiError::Unavailable
    }
}

impl From<crate::support::SupportError> for ApiError {
    fn from(e: crate::support::SupportError) -> Self {
        use crate::support::SupportError;
        use crate::support::remap::RemapError;
        match e {
            SupportError::NotFound(_) | SupportError::Remap(RemapError::NotFound(_)) => {
                ApiError::NotFound(e.to_string())
            }
            SupportError::Conflict(_) => ApiError::Conflict(e.to_string()),
            SupportError::Invalid(_)
            | SupportError::Remap(RemapError::NoPayload(_) | RemapError::UnknownSource(_)) => {
                ApiError::BadRequest(e.to_string())
            }
            SupportError::ReadOnly => ApiError::Forbidden(e.to_string()),
            SupportError::Storage(cause) | SupportError::Remap(RemapError::Storage(cause)) => {
                cause.into()
            }
        }
    }
}

impl From<askama::Error> for ApiError {
    fn from(e: askama::Error) -> Self {
        tracing::error!(error = %e, "an admin page did not render");
        ApiError::Internal
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownSource(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::LoginRequired => StatusCode::SEE_OTHER,
            ApiError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::PayloadTooLarge(_) | ApiError::TooManyRecords(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::SoapFault => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::SoapFault => {
                return response
                    .insert_header((CONTENT_TYPE, "text/xml; charset=utf-8"))
                    .body(crate::source::salesforce::soap_fault(&self.to_string()));
            }
            ApiError::Unavailable => {
                response.insert_header((RETRY_AFTER, "30"));
            }
            ApiError::Busy(_) => {
                response.insert_header((RETRY_AFTER, "5"));
            }
            ApiError::RequestTimeout(_) => {
                // The rest of a body that did not arrive is not waited for.
                response.insert_header((actix_web::http::header::CONNECTION, "close"));
            }
            ApiError::LoginRequired => {
                return response.insert_header((LOCATION, "/admin/login")).finish();
            }
            ApiError::TooManyRequests => {
                response.insert_header((RETRY_AFTER, "60"));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        response
            .json(serde_json::json!({"error": {"code": self.code(), "message": self.to_string()}}))
    }
}
